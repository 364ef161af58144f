"""The Advertising Creative Knowledge Base: schema, stores, migrations, import/export."""
