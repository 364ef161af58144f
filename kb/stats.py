"""Node counts per label and relationship counts per type: what `kdcvg kb stats` prints."""

from __future__ import annotations

from typing import Any

from kb.schema import MIGRATION_LABEL, NODE_TYPES, REL_TYPES
from kb.store import GraphStore, Transaction


def ackb_stats(store: GraphStore) -> dict[str, Any]:
    """Counts of every schema label and relationship type, plus the applied schema version."""

    def work(tx: Transaction) -> dict[str, Any]:
        nodes = {label: tx.run(f"MATCH (n:{label}) RETURN count(n) AS c")[0]["c"] for label in NODE_TYPES}
        relationships = {
            spec.type: tx.run(f"MATCH (:{spec.source})-[r:{spec.type}]->(:{spec.target}) RETURN count(r) AS c")[0]["c"]
            for spec in REL_TYPES.values()
        }
        versions = tx.run(f"MATCH (m:{MIGRATION_LABEL}) RETURN max(m.version) AS v")
        return {
            "backend": store.dialect,
            "schema_version": versions[0]["v"] if versions else None,
            "nodes": nodes,
            "relationships": relationships,
            "total_nodes": sum(nodes.values()),
            "total_relationships": sum(relationships.values()),
        }

    return store.read(work)
