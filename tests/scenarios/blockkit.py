"""Check Block Kit the way Slack's own SDK models it."""

from __future__ import annotations

from slack_sdk.models.blocks import Block


def assert_valid_blocks(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, f"unknown block {raw.get('type')}"
        block.validate_json()  # raises SlackObjectFormationError on limits and shapes
