"""The scale-out backend: PostgreSQL through psycopg 3, shared with LangGraph's Postgres saver."""
