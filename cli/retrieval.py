"""`kdcvg retrieval train|feedback|eval|propose-claims` and `kdcvg retrieve`: SAR from the command line.

`retrieval_app` and `retrieve` are registered on the main app by cli.main. Each command reads the ACKB from the configured store
(read-only), builds or reuses cached features, and keeps checkpoints under `<data>/models/sar`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from cli.common import fail, handled_errors, opened_store, out, settings

retrieval_app = typer.Typer(help="SAR: semantic-aware retrieval of clips for selling points.", no_args_is_help=True)


def _checkpoint_root() -> Path:
    return settings().models_dir / "sar"


def _graph_and_features() -> tuple[Any, dict]:
    """The whole ACKB from the store and its (cached) features."""
    from kb.graph import graph_from_store
    from retrieval.clip_image import clip_encoder_from_settings
    from retrieval.features import TextEncoder, build_features

    config = settings()
    with opened_store(read_only=True) as store:
        graph = graph_from_store(store, config.media_dir)
    with handled_errors():
        features = build_features(graph, TextEncoder(config.text_encoder_path), config.cache_dir, clip_encoder_from_settings(config))
    return graph, features


def _latest_meta() -> dict | None:
    """Meta (with config) of the latest checkpoint, or None when there is none."""
    from retrieval.checkpoint import load_checkpoint

    if not (_checkpoint_root() / "latest").is_file():
        return None
    _, config, meta = load_checkpoint(_checkpoint_root())
    return {**meta, "config": config.to_dict()}


def _save_with_index(
    model: Any, config: Any, graph: Any, features: dict, metrics: dict, train: list[str], extra: dict | None = None, judgements: list | None = None
) -> Path:
    """Save a checkpoint version (with the judgements it learnt from) and the ANN index of its serving clip vectors, and its serving bundle."""
    from retrieval.api import load_sar
    from retrieval.checkpoint import save_checkpoint
    from retrieval.index import ClipIndex
    from retrieval.sar import SarRetriever

    path = save_checkpoint(
        _checkpoint_root(), model, config, graph.content_hash, metrics, train_selling_points=train, extra=extra, judgements=judgements
    )
    serving = SarRetriever.for_config(model, graph, features, None, config)  # every approved link passes messages
    ClipIndex.build(graph.ids("CreativeClip"), serving.index_vectors()).save(path / "index")
    load_sar(settings())
    return path


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    shown = {k: v for k, v in metrics.items() if k.startswith(("Recall", "NDCG", "MRR"))}
    out.print(title + ": " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items()), highlight=False)


@retrieval_app.command("train")
def train(
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Training epochs (default: SarConfig's).")] = None,
    test_fraction: Annotated[float, typer.Option(min=0.01, max=0.9, help="Share of selling points held out.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed for the split and the model.")] = 0,
    if_changed: Annotated[bool, typer.Option("--if-changed", help="Skip if the latest checkpoint has this data and config.")] = False,
    text_mix: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=2.0, help="Text share of the served score (default: chosen by cross-validation over the training products)."),
    ] = None,
    vote_mix: Annotated[
        Optional[float],
        typer.Option(min=0.0, max=2.0, help="Share of the judged-neighbour vote (default: chosen with the text share; given alone, the other keeps SarConfig's)."),
    ] = None,
) -> None:
    """Train the heterogeneous GAT on the ACKB and save a versioned checkpoint with its index."""
    from dataclasses import replace

    from retrieval.crossval import choose_mixes
    from retrieval.judgements import judgement_record
    from retrieval.sar import SarRetriever
    from retrieval.split import split_by_selling_point
    from retrieval.train import SarConfig, held_out_metrics, train_sar

    graph, features = _graph_and_features()
    config = SarConfig(seed=seed, test_fraction=test_fraction, **({"epochs": epochs} if epochs else {}))
    given = {name: value for name, value in (("text_mix", text_mix), ("vote_mix", vote_mix)) if value is not None}
    chosen = "given" if given else "cross-validation"
    config = replace(config, **given)
    if if_changed and (latest := _latest_meta()) is not None:
        shares = {name: latest["config"].get(name) for name in ("text_mix", "vote_mix")}
        same_mix = latest.get("text_mix_chosen_by") == chosen and (not given or shares == {"text_mix": config.text_mix, "vote_mix": config.vote_mix})
        asked = {**config.to_dict(), **shares}  # the shares themselves are compared above
        if latest.get("data_hash") == graph.content_hash and same_mix and latest.get("config") == asked:
            out.print(f"checkpoint {latest['path']} was trained on this ACKB with this config: nothing to do")
            return
    with handled_errors():
        split = split_by_selling_point(graph, test_fraction=test_fraction, seed=seed)
        if not split.test:
            fail("no selling point can be held out: the ACKB needs products with two or more selling points with approved clips", 2)
        if not given:
            (mix, vote), measured = choose_mixes(graph, features, split, config, progress=sys.stderr.isatty())
            config = replace(config, text_mix=mix, vote_mix=vote)
            by_mix = ", ".join(f"{m}: {v['NDCG@10']:.3f}" for m, v in measured["mixes"].items() if v)
            out.print(f"text share {mix:g}, vote share {vote:g}, chosen over {measured['folds']} product groups "
                      f"(NDCG@10 by text/vote share: {by_mix or 'not measurable'})")
        model, history = train_sar(graph, features, split, config, progress=sys.stderr.isatty())
        scores = SarRetriever.for_config(model, graph, features, set(split.train), config).score_matrix(split.test)
        metrics = {**held_out_metrics(graph, scores, split.test), "final_loss": history["loss"][-1], "train_seconds": history["seconds"]}
        extra = {"validation_selling_points": history["validation_selling_points"], "text_mix_chosen_by": chosen}
        path = _save_with_index(model, config, graph, features, metrics, split.train, extra=extra, judgements=judgement_record(graph))
    out.print(f"trained {config.epochs} epochs in {history['seconds']:.1f} s, loss {history['loss'][0]:.3f} -> {history['loss'][-1]:.3f}")
    _print_metrics(f"held-out ({len(split.test)} selling points)", metrics)
    out.print(f"checkpoint: {path}")
    print('next: kdcvg retrieve "keeps drinks cold all day" -k 5   (add --product ID, --json; see --help)')


@retrieval_app.command("feedback")
def feedback(
    epochs: Annotated[Optional[int], typer.Option(min=1, help="Learning-to-rank epochs of the update (default: FeedbackConfig's).")] = None,
    candidate: Annotated[
        Optional[list[str]], typer.Option("--candidate", help="What to try, repeatable: update, retrain (default: both).")
    ] = None,
) -> None:
    """Refine the latest checkpoint from annotators' judgements: update it or train again, kept only if it validates better."""
    from retrieval.checkpoint import load_checkpoint, read_judgements
    from retrieval.feedback import FeedbackConfig, refine_with_feedback
    from retrieval.judgements import as_judged, judgement_record
    from retrieval.sar import SarRetriever
    from retrieval.split import Split
    from retrieval.train import held_out_metrics

    graph, features = _graph_and_features()
    with handled_errors():
        model, config, meta = load_checkpoint(_checkpoint_root())
        learnt = read_judgements(_checkpoint_root())  # None: an older checkpoint, what it learnt from is unknown
        trained_on = as_judged(graph, learnt) if learnt is not None else None
        if learnt is None:
            out.print("note: this checkpoint does not record the judgements it learnt from, so none count as new: "
                      "`kdcvg retrieval train` learns them all (or try --candidate update)", highlight=False)
        elif trained_on.content_hash != graph.content_hash:
            out.print(f"{_judged_since(learnt, judgement_record(graph))} since this checkpoint trained: they are learned from")
        train_ids = [sp for sp in meta.get("train_selling_points") or graph.ids("SellingPoint") if sp in graph.index("SellingPoint")]
        split = Split(train_ids, [sp for sp in graph.ids("SellingPoint") if sp not in set(train_ids)])
        feedback_config = FeedbackConfig(seed=config.seed, **({"epochs": epochs} if epochs else {}), **({"candidates": tuple(candidate)} if candidate else {}))
        validation = meta.get("validation_selling_points")  # never supervised on: the gate compares on them
        validation = [sp for sp in validation if sp in set(train_ids)] if validation is not None else None
        kept, history = refine_with_feedback(
            model, graph, features, split, feedback_config, progress=sys.stderr.isatty(), sar_config=config, validation=validation,
            trained_on=trained_on,
        )
        stats = {key: history[key] for key in ("kept", "reason", "gate", "validation", "validation_queries", "judgements", "judged_since")}
        stats |= {key: history[key] for key in ("update", "refit") if key in history}
        metrics: dict[str, Any] = {"feedback": stats}
        if split.test:
            scores = SarRetriever.for_config(kept, graph, features, set(split.train), config).score_matrix(split.test)
            metrics.update(held_out_metrics(graph, scores, split.test))
        extra = {"stage": "feedback", "parent": meta.get("version"), "feedback": stats, "feedback_config": feedback_config.to_dict(),
                 "text_mix_chosen_by": meta.get("text_mix_chosen_by"),
                 "validation_selling_points": validation}
        judgements = learnt if history["kept"] == "current" else judgement_record(graph)  # what the kept model learnt from
        path = _save_with_index(kept, config, graph, features, metrics, split.train, extra=extra, judgements=judgements)
    counts = f"{history['judgements']['approved']} approved, {history['judgements']['rejected']} rejected judgements"
    if "update" in history:
        losses = history["update"]["loss"]
        out.print(f"update, {len(losses)} epochs of learning to rank: loss {losses[0]:.3f} -> {losses[-1]:.3f} ({counts})", highlight=False)
    else:
        out.print(f"learning from {counts}", highlight=False)
    tried = ", ".join(f"{name} {values['NDCG@10']:.3f}" for name, values in history["validation"].items() if values)
    if tried:
        out.print(f"validation NDCG@10 ({history['validation_queries']} selling points): {tried}", highlight=False)
    out.print(f"kept the {history['kept']} model: {history['reason']}", highlight=False)
    if split.test:
        _print_metrics(f"held-out ({len(split.test)} selling points)", metrics)
    out.print(f"checkpoint: {path}")


def _judged_since(before: list, now: list) -> str:
    """'N judgements made or changed' between two judgement records."""
    changed = len({tuple(r) for r in now} - {tuple(r) for r in before})
    return f"{changed} judgement{'s' if changed != 1 else ''} made or changed"


@retrieval_app.command("eval")
def evaluate(
    directory: Annotated[Optional[Path], typer.Argument(help="An ACKB directory to evaluate (default: the store).")] = None,
    ackb: Annotated[Optional[Path], typer.Option(help="Same as DIRECTORY.")] = None,
    protocol: Annotated[str, typer.Option(help="cold-start (hold out whole products) or link-completion (hide links of clips).")] = "cold-start",
    seeds: Annotated[int, typer.Option(min=1, max=100, help="Seeds; each varies the split and the learned models' initialisation.")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="The first seed.")] = 0,
    test_fraction: Annotated[
        Optional[float], typer.Option(min=0.01, max=0.9, help="Share held out: products (cold-start, 0.2) or linked clips (link-completion, 0.3).")
    ] = None,
    learned: Annotated[bool, typer.Option(help="Also train and rank with the learned rankers (GAT, GAT+FB).")] = True,
    feedback_share: Annotated[
        float,
        typer.Option(
            min=0.0, max=0.9,
            help="Share of the training judgements that arrive after training (still proposed for the GAT, judged for feedback); adds GAT-all.",
        ),
    ] = 0.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """NDCG@10, Recall@10, MRR over several seeds with intervals: baselines (chance, structure, text, kNN) and SAR."""
    from kb.graph import graph_from_directory, graph_from_store
    from retrieval.evaluate import PROTOCOLS, evaluate_protocol, format_protocol_table
    from retrieval.features import TextEncoder, build_features
    from retrieval.rankers import FEEDBACK_COMPARISONS, learned_rankers

    if protocol not in PROTOCOLS:
        fail(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}", 2)
    if directory is not None and ackb is not None and directory != ackb:
        fail("give the ACKB directory once (DIRECTORY or --ackb)", 2)
    source = directory or ackb
    config = settings()
    with handled_errors():
        if source is not None:
            if not source.is_dir():
                fail(f"{source} is not a directory", 2)
            graph = graph_from_directory(source)
        else:
            with opened_store(read_only=True) as store:
                graph = graph_from_store(store, config.media_dir)
        features = build_features(graph, TextEncoder(config.text_encoder_path), config.cache_dir)
        decisions: list[dict[str, Any]] = []
        learned_for_seed = (lambda s: learned_rankers(seed=s, feedback_share=feedback_share, decisions=decisions)) if learned else None
        result = evaluate_protocol(
            graph, features, protocol, seeds=seeds, first_seed=seed, fraction=test_fraction, extra_rankers=learned_for_seed,
            compare=FEEDBACK_COMPARISONS,
        )
        if decisions:
            result["learned_runs"] = decisions
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(format_protocol_table(result))


@retrieval_app.command("propose-claims")
def propose_claims_command(
    selling_point: Annotated[Optional[str], typer.Option("--selling-point", help="Propose relations for this selling point id.")] = None,
    all_points: Annotated[bool, typer.Option("--all", help="Propose relations for every selling point.")] = False,
    top: Annotated[int, typer.Option("--top", help="Nearest selling points of other products per selling point (1-50).")] = 3,
    min_score: Annotated[float, typer.Option("--min-score", help="Least score in [0, 1] (cosine of the texts mapped to [0, 1]).")] = 0.8,
    summary: Annotated[bool, typer.Option("--summary", help="Print one summary line instead of one line per candidate.")] = False,
) -> None:
    """Propose SAME_CLAIM relations: each selling point's text-nearest selling points of other products.

    New pairs are written as `proposed` (audited as sar-model) for annotators to judge in the review
    queue; a pair already related keeps its relation and status.
    """
    from kb.graph import graph_from_store
    from retrieval.features import TextEncoder
    from retrieval.service import claim_candidates, propose_claims, selling_point_embeddings

    if (selling_point is None) == (not all_points):
        fail("give --selling-point ID or --all (one of them)", 2)
    if not 1 <= top <= 50:
        fail(f"--top must be between 1 and 50, got {top}", 2)
    if not 0.0 <= min_score <= 1.0:
        fail(f"--min-score must lie in [0, 1], got {min_score}", 2)
    config = settings()
    with opened_store(read_only=True) as store:
        graph = graph_from_store(store)
    with handled_errors():
        points = graph.ids("SellingPoint") if all_points else [selling_point]
        if selling_point is not None and selling_point not in graph.index("SellingPoint"):
            fail(f"no SellingPoint with id {selling_point!r}", 2)
        embeddings = selling_point_embeddings(graph, TextEncoder(config.text_encoder_path))
        candidates = claim_candidates(graph, embeddings, points, top, min_score)
    with opened_store() as store, handled_errors():
        written = propose_claims(store, candidates)
    if not summary:
        for c in candidates:
            state = "proposed" if c.existing is None else f"kept ({c.existing})"
            print(f"{c.selling_point}\t{c.other}\t{c.score:.3f}\t{state}")
    kept = sum(c.existing is not None for c in candidates)
    print(f"{len(candidates)} candidate pair(s) for {len(points)} selling point(s): {written} new proposed SAME_CLAIM relation(s), {kept} already related (kept)")


def _table(results: list[Any]) -> Table:
    table = Table("rank", "clip", "score", "motion", "product", "caption", "why")
    for rank, clip in enumerate(results, start=1):
        table.add_row(str(rank), clip.clip_id, f"{clip.score:.3f}", clip.motion or "", clip.product or "", clip.caption, "; ".join(clip.explanation))
    return table


def retrieve(
    text: Annotated[Optional[str], typer.Argument(help="A selling point, e.g. 'leak-proof lid'.")] = None,
    product: Annotated[Optional[str], typer.Option(help="Product id the selling point belongs to.")] = None,
    selling_point: Annotated[Optional[str], typer.Option("--selling-point", help="A selling point id already in the ACKB (instead of TEXT).")] = None,
    k: Annotated[int, typer.Option("-k", help="How many clips (1-100).")] = 5,
    category: Annotated[Optional[str], typer.Option(help="Only clips of products in this category id.")] = None,
    motion: Annotated[Optional[str], typer.Option(help="Only clips with this motion id.")] = None,
    approved_only: Annotated[bool, typer.Option("--approved-only", help="Only clips annotators approved for some selling point.")] = False,
    only_product: Annotated[bool, typer.Option("--only-product", help="Only clips featuring --product.")] = False,
    propose: Annotated[bool, typer.Option("--propose", help="Write results as proposed ILLUSTRATES links of --selling-point.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Rank the clips that best illustrate a selling point, with scores and evidence."""
    from dataclasses import asdict

    from retrieval.api import load_sar, retrieve_for_selling_point
    from retrieval.api import retrieve as retrieve_text
    from retrieval.service import ClipFilter, propose_links

    if (text is None) == (selling_point is None):
        fail("give a selling-point TEXT or --selling-point ID (one of them)", 2)
    if propose and selling_point is None:
        fail("--propose needs --selling-point: proposals are links to a selling point in the ACKB", 2)
    if only_product and product is None:
        fail("--only-product needs --product", 2)
    clip_filter = ClipFilter(product=product if only_product else None, category=category, motion=motion, approved_only=approved_only)
    with handled_errors():
        loaded = load_sar(settings())
        if selling_point is not None:
            results = retrieve_for_selling_point(selling_point, k=k, clip_filter=clip_filter, loaded=loaded)
        else:
            assert text is not None
            results = retrieve_text(text, product=product, k=k, clip_filter=clip_filter, loaded=loaded)
    written = None
    if propose:
        assert selling_point is not None
        with opened_store() as store:
            written = propose_links(store, selling_point, results)
    if as_json:
        print(json.dumps({"checkpoint": loaded.meta.get("path"), "results": [asdict(r) for r in results], "proposed": written}, indent=2, ensure_ascii=False))
        return
    out.print(_table(results))
    if written is not None:
        out.print(f"proposed {written} new ILLUSTRATES link(s) for {selling_point} (existing judgements kept)")
