"""Checks and helpers for OpenAI chat fine-tuning datasets, runnable offline as `python -m core.finetune`."""
