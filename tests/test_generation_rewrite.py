"""The LLM prompt rewriter (generation.rewrite): enforced structure, fallback recorded, local LM and HTTP endpoint."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from generation.api import generate_for
from generation.prompt import PromptPlan
from generation.rewrite import (
    AnswerError,
    GraphRewriter,
    HttpRewriter,
    LocalLMRewriter,
    RewriteRequest,
    RewriterError,
    apply_answer,
    check_answer,
    rewrite_plan,
    rewriter_from_settings,
)
from generation.tiny import write_tiny_causal_lm
from kb.backends import open_store
from kdcvg.config import Settings

CAPTION = "Slow zoom in on a steel bottle on a kitchen table"
REQUEST = RewriteRequest(caption=CAPTION, subject="AirBeat earbuds, Active noise cancellation", scene="on a desk", product_name="AirBeat earbuds")
PLAN = PromptPlan(
    prompt="AirBeat earbuds, Active noise cancellation, on a desk. Camera motion: zoom in.", negative_prompt="blurry",
    subject=REQUEST.subject, scene="on a desk", motion="zoom in", reference_clip_ids=["clip-1"], sources={"motion": ["Motion:m.name"]},
)  # fmt: skip


def answer(motion: str = "Slow zoom in", prompt: str | None = None, **extra: Any) -> str:
    """A well-formed answer, with `extra` top-level keys mixed in."""
    body = {
        "reference": {"subject": "a steel bottle", "scene": "on a kitchen table", "motion": motion},
        "prompt": prompt if prompt is not None else f"AirBeat earbuds on a desk, {motion.lower()}.",
        **extra,
    }
    return json.dumps(body)


def test_a_well_formed_answer_is_used_and_recorded() -> None:
    text = "Sure! ```json\n" + answer() + "\n```"
    parts, prompt = check_answer(text, REQUEST)
    assert parts == {"subject": "a steel bottle", "scene": "on a kitchen table", "motion": "Slow zoom in"}
    plan = apply_answer(PLAN, REQUEST, text, "http")
    assert plan.prompt == prompt == "AirBeat earbuds on a desk, slow zoom in."
    assert plan.motion == "Slow zoom in" and plan.negative_prompt == PLAN.negative_prompt and plan.subject == PLAN.subject
    assert plan.rewrite == {"rewriter": "http", "status": "rewritten", "reason": None, "reference_parts": parts}
    assert plan.sources["motion"] == ["CreativeClip:clip-1.caption"] and plan.sources["prompt"] == ["llm:http"]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("I cannot help with that.", "no JSON object"),
        ("[1, 2]", "no JSON object"),
        (answer(style="cinematic"), 'exactly "reference" and "prompt"'),
        (json.dumps({"reference": {"subject": "x", "motion": "zoom in"}, "prompt": "AirBeat earbuds zoom in"}), '"subject", "scene" and "motion"'),
        (answer(motion="spinning drone orbit"), "not in it: drone, orbit, spinning"),
        (answer(motion=""), "motion is empty"),
        (answer(prompt="A bottle on a desk, slow zoom in."), "does not name the product"),
        (answer(prompt="AirBeat earbuds on a desk, static."), "does not keep the reference motion"),
        (answer(prompt="AirBeat earbuds slow zoom in " + "x" * 400), "at most 400"),
        (answer(prompt=""), '"prompt" must be a non-empty string'),
    ],
)
def test_malformed_answers_fall_back_to_the_graph_prompt(text: str, reason: str) -> None:
    with pytest.raises(AnswerError, match=re.escape(reason)):
        check_answer(text, REQUEST)
    plan = apply_answer(PLAN, REQUEST, text, "local")
    assert (plan.prompt, plan.motion, plan.sources) == (PLAN.prompt, PLAN.motion, PLAN.sources)
    assert plan.rewrite["status"] == "fallback" and reason in plan.rewrite["reason"] and plan.rewrite["rewriter"] == "local"
    assert plan.rewrite["raw_answer"] == text[:500]


def test_graph_rewriter_keeps_the_deterministic_prompt() -> None:
    plan = rewrite_plan(PLAN, CAPTION, "AirBeat earbuds", GraphRewriter())
    assert plan.prompt == PLAN.prompt and plan.rewrite == {"rewriter": "graph", "status": "deterministic", "reason": None}


def test_local_lm_rewriter_runs_offline_and_falls_back_on_random_text(tmp_path: Path) -> None:
    model_dir = write_tiny_causal_lm(tmp_path / "lm")
    rewriter = LocalLMRewriter(model_dir, max_new_tokens=16)
    raw = rewriter.complete(REQUEST)
    assert isinstance(raw, str) and raw == rewriter.complete(REQUEST)  # greedy: deterministic
    plan = rewriter.rewrite(PLAN, REQUEST)
    assert plan.prompt == PLAN.prompt and plan.rewrite["status"] == "fallback" and plan.rewrite["rewriter"] == "local"
    assert plan.rewrite["reason"] == "the answer holds no JSON object"
    with pytest.raises(RewriterError, match="no config.json"):
        LocalLMRewriter(tmp_path)


class FakeLLM(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers like an obedient LLM (or as `mode` says), recording requests."""

    mode = "obedient"
    requests: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeLLM.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if FakeLLM.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        caption = json.loads(re.search(r"Reference script: (\".*\")", user).group(1))
        subject = json.loads(re.search(r"Replace the subject with: (\".*?\")\.", user).group(1))
        scene = json.loads(re.search(r"Replace the scene with: (\".*?\")\.", user).group(1))
        motion = " ".join(caption.split()[:3])
        content = json.dumps({"reference": {"subject": "the reference's product", "scene": "", "motion": motion},
                              "prompt": f"{subject}, {scene}, {motion.lower()}."})  # fmt: skip
        if FakeLLM.mode == "prose":
            content = "Here is a nice prompt for your product: a cinematic shot."
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        """Quiet."""


@pytest.fixture()
def llm_url() -> Iterator[str]:
    """A real HTTP server on a free local port for the test, shut down after it."""
    FakeLLM.mode, FakeLLM.requests = "obedient", []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()
    thread.join()


def test_http_rewriter_uses_the_endpoint_and_falls_back_when_it_misbehaves(llm_url: str) -> None:
    rewriter = HttpRewriter(llm_url, "tiny-chat", api_key="secret")
    plan = rewriter.rewrite(PLAN, REQUEST)
    assert plan.rewrite["status"] == "rewritten"
    assert plan.prompt == "AirBeat earbuds, Active noise cancellation, on a desk, slow zoom in."
    sent = FakeLLM.requests[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["auth"] == "Bearer secret"
    assert sent["body"]["model"] == "tiny-chat" and sent["body"]["temperature"] == 0 and CAPTION in sent["body"]["messages"][-1]["content"]
    FakeLLM.mode = "prose"
    plan = rewriter.rewrite(PLAN, REQUEST)
    assert plan.prompt == PLAN.prompt and plan.rewrite["reason"] == "the answer holds no JSON object"
    FakeLLM.mode = "error"
    plan = rewriter.rewrite(PLAN, REQUEST)
    assert plan.prompt == PLAN.prompt and plan.rewrite["status"] == "fallback" and "500" in plan.rewrite["reason"]
    unreachable = HttpRewriter("http://127.0.0.1:9/v1", "tiny-chat", timeout_s=5).rewrite(PLAN, REQUEST)
    assert unreachable.rewrite["status"] == "fallback" and "request failed" in unreachable.rewrite["reason"]


def test_rewriter_settings_are_checked(tmp_path: Path) -> None:
    base = Settings(data_dir=tmp_path)
    assert isinstance(rewriter_from_settings(base), GraphRewriter)
    with pytest.raises(RewriterError, match="prompt_llm_path"):
        rewriter_from_settings(base.model_copy(update={"prompt_rewriter": "local"}))
    with pytest.raises(RewriterError, match="prompt_llm_url"):
        rewriter_from_settings(base.model_copy(update={"prompt_rewriter": "http"}))
    for url in ("file:///etc/passwd", "ftp://host/v1", "localhost:8000"):
        with pytest.raises(RewriterError, match="http:// or https://"):
            rewriter_from_settings(base.model_copy(update={"prompt_rewriter": "http", "prompt_llm_url": url, "prompt_llm_model": "m"}))
    with pytest.raises(RewriterError, match="model name"):
        rewriter_from_settings(base.model_copy(update={"prompt_rewriter": "http", "prompt_llm_url": "http://127.0.0.1:1/v1"}))


def test_generate_with_the_http_rewriter_records_the_rewrite(mkr_world: tuple[Settings, Path], llm_url: str) -> None:
    settings, model = mkr_world
    configured = settings.model_copy(update={"prompt_rewriter": "http", "prompt_llm_url": llm_url, "prompt_llm_model": "tiny-chat"})
    result = generate_for("prod-thermopeak-insulated-bottle", "Leak-proof lid", model=model, seed=1, settings=configured,
                      frames=4, height=32, width=32, steps=1)  # fmt: skip
    assert result.prompt.rewrite["status"] == "rewritten" and "ThermoPeak" in result.prompt.prompt
    caption = FakeLLM.requests[-1]["body"]["messages"][-1]["content"]
    assert " ".join(json.loads(re.search(r"Reference script: (\".*\")", caption).group(1)).split()[:3]).lower() in result.prompt.prompt
    sidecar = json.loads(result.sidecar_path.read_text())
    assert sidecar["prompt"]["rewrite"]["status"] == "rewritten" and sidecar["parameters"]["prompt_rewrite"]["rewriter"] == "http"
    with open_store(settings, read_only=True) as store:
        prompt, parameters = store.query("MATCH (g:GeneratedVideo {id: $id}) RETURN g.prompt, g.parameters", {"id": result.video_id}).rows[0]
    assert prompt == result.prompt.prompt and json.loads(parameters)["prompt_rewrite"]["status"] == "rewritten"
