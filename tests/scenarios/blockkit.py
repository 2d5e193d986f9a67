"""Check Block Kit the way Slack's own SDK models it."""

from __future__ import annotations

from slack_sdk.models.blocks import Block


def assert_valid_blocks(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= 50
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, f"unknown block {raw.get('type')}"
        block.validate_json()  # raises SlackObjectFormationError on limits and shapes


def assert_valid_view(view: dict) -> None:
    """A Home tab or modal as Slack's SDK models it: up to 100 blocks, each valid."""
    from slack_sdk.models.views import View

    assert 0 < len(view["blocks"]) <= 100
    View(**{k: v for k, v in view.items() if k != "id"}).validate_json()
    for raw in view["blocks"]:
        block = Block.parse(raw)
        assert block is not None, f"unknown block {raw.get('type')}"
        block.validate_json()
