"""Token counting works with no network and picks the right encoding per model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from core import tokens


def test_fine_tuned_names_resolve_through_their_base_model():
    info = tokens.model_info("ft:gpt-4.1-mini-2025-04-14:acme:support:AbC123")
    assert info.base == "gpt-4.1-mini-2025-04-14"
    assert info.encoding == "o200k_base"
    assert info.context_window == 1_047_576
    assert tokens.model_info("ft:gpt-4o-mini-2024-07-18:acme::x").context_window == 128_000
    # tiktoken itself gets this wrong (cl100k_base), and raises on ft:o4-mini names
    assert tokens.model_info("ft:o4-mini-2025-04-16:acme::x").encoding == "o200k_base"


def test_old_models_use_cl100k_and_unknown_models_fall_back():
    assert tokens.model_info("gpt-4-0613").encoding == "cl100k_base"
    assert tokens.model_info("gpt-3.5-turbo-0125").context_window == 16_385
    local = tokens.model_info("llama-3.1-8b-instruct")
    assert not local.known and local.encoding == "o200k_base" and local.context_window == 16_384


def test_counts_differ_by_encoding():
    text = "Threadwise counts tokens offline: naïve café — 東京"
    assert tokens.count_text(text, "gpt-4o") != tokens.count_text(text, "gpt-4")


def test_message_formula_matches_cookbook():
    msg = {"role": "user", "content": "hello world", "name": "bob"}
    enc = tokens.encoding_for("gpt-4o")
    expected = 3 + len(enc.encode("user")) + len(enc.encode("hello world")) + len(enc.encode("bob")) + 1
    assert tokens.count_message(msg, "gpt-4o") == expected
    # bookkeeping fields stored beside a message are never counted
    assert tokens.count_message({**msg, "tokens": 99, "ts": "1.2", "user": "U1"}, "gpt-4o") == expected


def test_truncate_cuts_on_token_boundary():
    text = "word " * 1000
    cut = tokens.truncate_text(text, "gpt-4o", 50)
    assert tokens.count_text(cut, "gpt-4o") <= 50
    assert text.startswith(cut)


def test_counting_works_offline_in_a_fresh_process(tmp_path):
    """No network at all: sockets fail, an empty cache dir, and counts still come back."""
    script = textwrap.dedent(
        """
        import socket
        def no_network(*a, **k):
            raise OSError("network disabled in this test")
        socket.create_connection = no_network
        socket.socket.connect = no_network
        from core import tokens
        print(tokens.count_text("hello offline world", "gpt-4.1-mini"), tokens.count_text("hello", "gpt-4"))
        """
    )
    env = {**os.environ, "TIKTOKEN_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    o200k, cl100k = map(int, out.stdout.split())
    assert o200k == 3 and cl100k == 1
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_each_model_family_is_steered_as_openai_documents():
    assert tokens.model_info("gpt-5-mini-2025-08-07").steering == tokens.REASONING
    assert tokens.model_info("o4-mini").steering == tokens.REASONING
    assert tokens.model_info("gpt-5.1").steering == tokens.EITHER
    assert tokens.model_info("gpt-5.2-pro").steering == tokens.REASONING  # pro always reasons
    assert tokens.model_info("gpt-5-chat-latest").steering == tokens.SAMPLING
    assert tokens.model_info("gpt-4.1-mini").steering == tokens.SAMPLING
    assert tokens.model_info("ft:gpt-4.1-mini-2025-04-14:acme::x").steering == tokens.SAMPLING
    assert tokens.model_info("gpt-5-nano").context_window == 400_000


def test_an_unknown_model_gets_conservative_defaults_and_one_log_line(caplog):
    tokens.model_info.cache_clear()
    with caplog.at_level("INFO", logger="core.tokens"):
        for _ in range(3):
            info = tokens.model_info("my-local-llama")
    assert not info.known and info.context_window == 16_384 and info.steering == tokens.SAMPLING
    assert len([r for r in caplog.records if "Unknown model" in r.message]) == 1
