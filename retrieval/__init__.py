"""SAR: semantic-aware retrieval of creative clips for selling points over the ACKB."""

EMBEDDED_LABELS: tuple[str, ...] = ("SellingPoint", "CreativeClip")  # what the SAR model embeds into one space
