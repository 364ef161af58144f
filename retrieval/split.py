"""The held-out split of SAR's training and evaluation: selling points whose approved clips train, and those held out."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from kb.graph import AckbGraph
from kdcvg.errors import BadInputError


@dataclass(frozen=True)
class Split:
    """Selling points whose approved clips train the model, and those held out to evaluate it."""

    train: list[str]
    test: list[str]


def split_by_selling_point(graph: AckbGraph, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out about `test_fraction` of each product's selling points that have approved clips.

    Per product, so every product keeps training selling points (retrieval for a new selling point
    of a known product is the use case); deterministic for a seed.
    """
    if not 0 < test_fraction < 1:
        raise BadInputError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    approved = graph.judgements("approved")
    by_product: dict[str, list[str]] = defaultdict(list)
    for sp in graph.ids("SellingPoint"):
        by_product[graph.product_of_selling_point.get(sp, "")].append(sp)
    rng = random.Random(seed)
    test: set[str] = set()
    for product in sorted(by_product):
        eligible = [sp for sp in by_product[product] if approved.get(sp)]
        if len(eligible) < 2:
            continue
        count = max(1, round(len(eligible) * test_fraction))
        test.update(rng.sample(eligible, min(count, len(eligible) - 1)))
    ordered = graph.ids("SellingPoint")
    return Split([sp for sp in ordered if sp not in test], [sp for sp in ordered if sp in test])
