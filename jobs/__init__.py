"""Entry points for spark-submit and the orchestration they share (config, session, tables, ledger)."""
