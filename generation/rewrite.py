"""The paper's semantic prior with an LLM: rewrite the best reference's script for the new product.

Why: the paper has an LLM split the best reference clip's script into {subject, scene, motion},
keep the motion, swap in the new product's subject and scene, and write the final prompt. The
deterministic graph prompt (`generation.prompt.build_prompt`) stays the default and the fallback;
a `PromptRewriter` turns its `PromptPlan` into a rewritten one:

- `GraphRewriter` ("graph"): the plan unchanged (no model, same strings for the same graph);
- `LocalLMRewriter` ("local"): a causal LM from a local folder (transformers, offline, greedy);
- `HttpRewriter` ("http"): an OpenAI-compatible chat-completions endpoint (temperature 0).

An LLM's answer must be ONE JSON object `{"reference": {"subject", "scene", "motion"}, "prompt"}`
and pass `check_answer`: the motion is made only of the reference script's words (kept, not
invented), and the prompt names the product and contains that motion. Any other answer, or an
unreachable model, gives the deterministic plan back, with the reason in `PromptPlan.rewrite`,
which the sidecar and the `GeneratedVideo` parameters record.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from generation.prompt import PromptPlan
from kdcvg.config import Settings
from kdcvg.errors import BadInputError

MAX_PROMPT_CHARS = 400
MAX_PART_CHARS = 200
MAX_RAW_CHARS = 500  # of a rejected answer, kept in provenance
MAX_RESPONSE_BYTES = 1 << 20
HTTP_TIMEOUT_S = 60.0
MAX_NEW_TOKENS = 160

SYSTEM = "You adapt short-video scripts to new products. Answer with one JSON object and nothing else."
INSTRUCTION = """Reference script: {caption}
1. Split the reference script into subject, scene and motion (the camera and object movement).
2. Keep the motion exactly. Replace the subject with: {subject}. Replace the scene with: {scene}.
3. Write the final text-to-video prompt in one or two sentences.
Answer as {{"reference": {{"subject": "...", "scene": "...", "motion": "..."}}, "prompt": "..."}}"""


class RewriterError(BadInputError):
    """The rewriter is misconfigured (unknown kind, missing model folder or URL): a setup error, not a fallback."""


class AnswerError(ValueError):
    """An LLM answer that does not have the required structure (the plan falls back to the deterministic prompt)."""


@dataclass(frozen=True)
class RewriteRequest:
    """What the LLM is given: the reference script and the new product's subject and scene."""

    caption: str
    subject: str
    scene: str
    product_name: str

    def messages(self) -> list[dict[str, str]]:
        """Chat messages (system + user) asking for the structured rewrite."""
        user = INSTRUCTION.format(caption=json.dumps(self.caption), subject=json.dumps(self.subject), scene=json.dumps(self.scene))
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


class PromptRewriter(Protocol):
    """Turns the deterministic plan into the final one (or returns it, saying why)."""

    name: str

    def rewrite(self, plan: PromptPlan, request: RewriteRequest) -> PromptPlan: ...


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.casefold())


def _first_json_object(text: str) -> Any:
    """The first JSON value that starts at a '{' in `text` (models often wrap it in prose or code fences)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        return value
    raise AnswerError("the answer holds no JSON object")


def check_answer(text: str, request: RewriteRequest) -> tuple[dict[str, str], str]:
    """({subject, scene, motion} of the reference, final prompt) from an LLM answer, or AnswerError saying what is wrong."""
    answer = _first_json_object(text)
    if not isinstance(answer, dict) or set(answer) != {"reference", "prompt"}:
        raise AnswerError('the answer must be an object with exactly "reference" and "prompt"')
    parts, prompt = answer["reference"], answer["prompt"]
    if not isinstance(parts, dict) or set(parts) != {"subject", "scene", "motion"}:
        raise AnswerError('"reference" must be an object with exactly "subject", "scene" and "motion"')
    for name, value in parts.items():
        if not isinstance(value, str) or len(value) > MAX_PART_CHARS:
            raise AnswerError(f'reference "{name}" must be a string of at most {MAX_PART_CHARS} characters')
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise AnswerError(f'"prompt" must be a non-empty string of at most {MAX_PROMPT_CHARS} characters')
    motion_words = _words(parts["motion"])
    if not motion_words:
        raise AnswerError("the reference motion is empty")
    invented = sorted(set(motion_words) - set(_words(request.caption)))
    if invented:
        raise AnswerError(f"the motion must come from the reference script; not in it: {', '.join(invented)}")
    prompt_words = set(_words(prompt))
    if not set(_words(request.product_name)) <= prompt_words:
        raise AnswerError(f"the prompt does not name the product {request.product_name!r}")
    if not set(motion_words) <= prompt_words:
        raise AnswerError("the prompt does not keep the reference motion")
    clean = {name: " ".join(value.split()) for name, value in parts.items()}
    return clean, " ".join(prompt.split())


def apply_answer(plan: PromptPlan, request: RewriteRequest, text: str, rewriter: str) -> PromptPlan:
    """The rewritten plan when `text` passes `check_answer`, else `plan` with the fallback and its reason recorded."""
    try:
        parts, prompt = check_answer(text, request)
    except AnswerError as error:
        return fallback(plan, rewriter, str(error), text)
    sources = {**plan.sources, "motion": [f"CreativeClip:{plan.reference_clip_ids[0]}.caption"], "prompt": [f"llm:{rewriter}"]}
    record = {"rewriter": rewriter, "status": "rewritten", "reason": None, "reference_parts": parts}
    return replace(plan, prompt=prompt, motion=parts["motion"], sources=sources, rewrite=record)


def fallback(plan: PromptPlan, rewriter: str, reason: str, raw: str | None = None) -> PromptPlan:
    """The deterministic plan, recording that `rewriter` was tried and why its answer was not used."""
    record = {"rewriter": rewriter, "status": "fallback", "reason": reason, "raw_answer": (raw or "")[:MAX_RAW_CHARS] or None}
    return replace(plan, rewrite=record)


class GraphRewriter:
    """The deterministic graph prompt, unchanged (the default)."""

    name = "graph"

    def rewrite(self, plan: PromptPlan, request: RewriteRequest) -> PromptPlan:
        return replace(plan, rewrite={"rewriter": self.name, "status": "deterministic", "reason": None})


class LocalLMRewriter:
    """A causal LM loaded from a local folder, offline; greedy decoding of the structured answer."""

    name = "local"

    def __init__(self, model_dir: Path, max_new_tokens: int = MAX_NEW_TOKENS) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise RewriterError(f"prompt LLM folder {model_dir} has no config.json (a local transformers causal LM is needed)")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True).eval()
        except (OSError, ValueError) as error:
            raise RewriterError(f"{model_dir}: cannot load the prompt LLM ({error})") from error
        self.max_new_tokens = max_new_tokens

    def _text(self, request: RewriteRequest) -> str:
        """The chat template's text when the tokenizer has one, else the messages joined as plain text."""
        messages = request.messages()
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(message["content"] for message in messages) + "\n\n"

    def complete(self, request: RewriteRequest) -> str:
        """The model's greedy continuation of the rewrite instruction."""
        import torch

        inputs = self.tokenizer(self._text(request), return_tensors="pt")
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False, pad_token_id=pad)
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)

    def rewrite(self, plan: PromptPlan, request: RewriteRequest) -> PromptPlan:
        return apply_answer(plan, request, self.complete(request), self.name)


class HttpRewriter:
    """An OpenAI-compatible `POST {base_url}/chat/completions` endpoint (a local vLLM, llama.cpp or Ollama server)."""

    name = "http"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = HTTP_TIMEOUT_S) -> None:
        if not re.match(r"^https?://[^\s/]+", base_url):
            raise RewriterError(f"prompt LLM URL must be an http:// or https:// URL, got {base_url!r}")
        if not model:
            raise RewriterError("the prompt LLM endpoint needs a model name (prompt_llm_model, env KDCVG_PROMPT_LLM_MODEL)")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key, self.timeout_s = model, api_key, timeout_s

    def complete(self, request: RewriteRequest) -> str:
        """The endpoint's answer text; AnswerError for a transport or protocol failure."""
        body = json.dumps({"model": self.model, "messages": request.messages(), "temperature": 0, "max_tokens": 2 * MAX_NEW_TOKENS})
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        http_request = urllib.request.Request(self.url, data=body.encode("utf-8"), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout_s) as response:
                payload = response.read(MAX_RESPONSE_BYTES + 1)
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise AnswerError(f"{self.url}: request failed ({error})") from None
        if len(payload) > MAX_RESPONSE_BYTES:
            raise AnswerError(f"{self.url}: response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            content = json.loads(payload)["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise AnswerError(f"{self.url}: not an OpenAI chat-completions response") from None
        if not isinstance(content, str):
            raise AnswerError(f"{self.url}: the message content is not text")
        return content

    def rewrite(self, plan: PromptPlan, request: RewriteRequest) -> PromptPlan:
        try:
            text = self.complete(request)
        except AnswerError as error:
            return fallback(plan, self.name, str(error))
        return apply_answer(plan, request, text, self.name)


def rewriter_from_settings(settings: Settings) -> PromptRewriter:
    """The configured rewriter (`prompt_rewriter`: graph, local or http), loaded once; RewriterError if misconfigured."""
    kind = settings.prompt_rewriter
    if kind == "graph":
        return GraphRewriter()
    if kind == "local":
        if settings.prompt_llm_path is None:
            raise RewriterError("prompt_rewriter 'local' needs prompt_llm_path (env KDCVG_PROMPT_LLM), a local causal LM folder")
        return LocalLMRewriter(settings.prompt_llm_path)
    if settings.prompt_llm_url is None:
        raise RewriterError("prompt_rewriter 'http' needs prompt_llm_url (env KDCVG_PROMPT_LLM_URL)")
    return HttpRewriter(settings.prompt_llm_url, settings.prompt_llm_model or "", settings.prompt_llm_api_key)


def rewrite_plan(plan: PromptPlan, caption: str, product_name: str, rewriter: PromptRewriter) -> PromptPlan:
    """Ask `rewriter` to adapt the best reference's `caption` to the plan's subject and scene."""
    request = RewriteRequest(caption=caption, subject=plan.subject, scene=plan.scene or "", product_name=product_name)
    return rewriter.rewrite(plan, request)
