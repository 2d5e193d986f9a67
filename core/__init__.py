"""Threadwise core: conversations, personas, schemas, the LLM client and fine-tuning.

Nothing in this package imports Slack; `bot/` translates Slack events into these calls.
"""
