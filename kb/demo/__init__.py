"""The demo ACKB: a small but real advertising knowledge base with rendered clips.

`kb.demo.spec` holds the content (categories, products, selling points, motions), `kb.demo.clips`
renders the clips, and `kb.demo.build.build_demo_ackb` writes the whole thing in the ACKB interchange
format (docs/ackb-format.md). Run `python -m kb.demo.build OUT_DIR`.
"""
