"""ScriptedEngineDouble: a stand-in for an LLM in tests and dry runs. It is not a model.

It answers each prompt with what a script function returns for it, so tests can exercise everything around
an engine (caching, structured-output repair, re-asks, Spark workers) without weights. With `calls_file`
set, every prompt it answers is appended there as one line (process id, prompt hash, and the prompt and
completion tokens it reported), so a test can count calls and tokens made in Spark's Python workers.
"""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Sequence

from instructlake.llm.engine import Generation, Messages, SamplingParams, prompt_hash

# A script returns the answer's text, or None to play a backend failure (no answer at all).
Script = Callable[[Messages], "str | None"]


def load_script(spec: str) -> Script:
    """'module:function' -> the function."""
    mod, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"llm script {spec!r}: expected 'module:function'")
    return getattr(importlib.import_module(mod), name)


class ScriptedEngineDouble:
    backend = "scripted"

    def __init__(self, model: str = "instructlake.llm.scripted:keyword_tags", calls_file: str | None = None,
                 script: Script | None = None):
        # `model` names the script ('module:function'): it is what the cache keys record as the model.
        self.model = model
        self.script = script or load_script(model)
        self.calls_file = calls_file
        self.calls = 0

    def generate(self, prompts: Sequence[Messages], params: SamplingParams) -> list[Generation]:
        out = []
        for m in prompts:
            self.calls += 1
            text = self.script(m)
            tokens = sum(len(x["content"].split()) for x in m)
            if text is None:
                out.append(Generation(prompt_tokens=tokens, error="scripted backend failure"))
                continue
            out.append(Generation(text=text, prompt_tokens=tokens, completion_tokens=len(text.split())))
        if self.calls_file and prompts:
            with open(self.calls_file, "a", encoding="utf-8") as f:
                for m, g in zip(prompts, out, strict=True):
                    f.write(f"{os.getpid()} {prompt_hash(m)} {g.prompt_tokens} {g.completion_tokens}\n")
        return out


# ---------------------------------------------------------------- scripts

KEYWORDS = {
    "code": ("programming", "the request involves writing or reading code"),
    "python": ("python programming", "the request names Python"),
    "function": ("programming", "the request asks for a function"),
    "translate": ("translation", "the request asks for a translation"),
    "poem": ("creative writing", "the request asks for a poem"),
    "story": ("creative writing", "the request asks for a story"),
    "calculate": ("arithmetic", "the request asks for a calculation"),
    "math": ("mathematics", "the request is about mathematics"),
    "summar": ("summarization", "the request asks for a summary"),
    "email": ("business writing", "the request asks for an email"),
    "list": ("listing", "the request asks for a list"),
}


def _instruction(messages: Messages) -> str:
    user = [m["content"] for m in messages if m["role"] == "user"]
    first = user[0] if user else ""
    m = re.search(r"<instruction>\s*(.*?)\s*</instruction>", first, re.S)
    return m.group(1) if m else first


def keyword_tags(messages: Messages) -> str | None:
    """InsTag-style JSON tags from keywords of the instruction. An instruction holding `[[malformed]]` is
    answered with fenced JSON carrying a trailing comma and prose (repairable); one holding `[[garbage]]`
    with prose until re-asked once; one holding `[[backend-down]]` not at all (a backend failure)."""
    text = _instruction(messages).lower()
    if "[[backend-down]]" in text:
        return None
    tags = [{"tag": t, "explanation": why} for k, (t, why) in KEYWORDS.items() if k in text]
    seen: set[str] = set()
    tags = [t for t in tags if not (t["tag"] in seen or seen.add(t["tag"]))] or [
        {"tag": "general knowledge", "explanation": "no specific skill named"}]
    answer = json.dumps(tags)
    reasked = any(m["role"] == "assistant" for m in messages)
    if "[[malformed]]" in text:
        return "Sure! Here are the tags:\n```json\n" + answer[:-1] + ",]\n```\nHope this helps."
    if "[[garbage]]" in text and not reasked:
        return "I think this instruction is about many things."
    return answer


def crash_once(messages: Messages) -> str | None:
    """keyword_tags, except that an instruction holding `[[crash-once:PATH]]` kills the worker's task the
    first time it is asked (PATH records that it happened): a job that dies midway."""
    m = re.search(r"\[\[crash-once:(.*?)\]\]", _instruction(messages))
    if m and not os.path.exists(m.group(1)):
        open(m.group(1), "w").close()
        raise RuntimeError("scripted crash")
    return keyword_tags(messages)


def always_prose(messages: Messages) -> str:
    """Never valid JSON: for testing that final failures become rows with errors."""
    return "I would rather chat about the weather."


def declared_tags(messages: Messages) -> str:
    """Answers with the tags the instruction declares as `[[tags: a | b | c]]` (keyword_tags otherwise):
    lets a test choose raw tags, spelling variants and noise included."""
    m = re.search(r"\[\[tags:(.*?)\]\]", _instruction(messages), re.S)
    if not m:
        return keyword_tags(messages) or "[]"
    return json.dumps([{"tag": t.strip(), "explanation": "declared by the test"} for t in m.group(1).split("|")])


def _tagged(text: str, tag: str) -> str:
    m = re.search(rf"<{tag}>\s*(.*?)\s*</{tag}>", text, re.S)
    return m.group(1) if m else ""


def synth(messages: Messages) -> str | None:
    """Plays every synthesis role, told apart by its prompt: evolver, judge, responder, difficulty rater.

    The evolver appends a harder sentence; markers in the seed instruction make it hostile:
    [[copy]] returns the parent unchanged, [[refuse]] a refusal, [[empty]] an empty string, [[huge]] 40,000
    characters, [[prose]] no JSON even when re-asked, [[leak]] a template marker, [[backend-down]] no answer,
    [[crash-once:PATH]] kills the task the first time. The judge rejects text holding [[judge-reject]] and
    calls a rewrite more complex when it is longer. Difficulty grows with length."""
    user = next((m["content"] for m in messages if m["role"] == "user"), "")
    if "Write the user's next message" in user:
        convo = _tagged(user, "conversation")
        if "[[no-follow-up]]" in convo:
            return json.dumps({"question": ""})
        return json.dumps({"question": f"Could you go deeper on point {convo.count('Assistant:')} of your "
                                       f"answer?"})
    if "Answer the user's last message" in user:
        last = _tagged(user, "conversation").rsplit("User:", 1)[-1].strip()
        return json.dumps({"response": f"Going deeper: {last[:60]} Here are more details."})
    if "<reference>" in user:  # deficiency diagnosis
        weak = re.search(r"\[\[weak:(.*?)\]\]", _tagged(user, "question"))
        if weak:
            return json.dumps({"deficient": True, "skill": weak.group(1),
                               "explanation": f"the answer misses the {weak.group(1)} the reference shows"})
        return json.dumps({"deficient": False, "skill": "", "explanation": "as good as the reference"})
    if "The model is weak at:" in user:
        skill = re.search(r"The model is weak at: (.*)", user).group(1).strip()
        index = re.search(r"instruction number (\d+)", user).group(1)
        return json.dumps({"instruction": f"Practice task {index} for {skill}: solve a fresh, moderately "
                                          f"hard problem that needs {skill}, and show every step of your "
                                          f"work."})
    if "<rewritten>" in user:
        parent, new = _tagged(user, "original"), _tagged(user, "rewritten")
        ok = "[[judge-reject]]" not in new
        return json.dumps({"valid": ok, "more_complex": len(new) > len(parent), "same_intent": True,
                           "score": 8 if ok else 2, "reason": "harder and on topic" if ok else "unclear "
                                                                                               "request"})
    if "Rate the difficulty" in user:
        words = len(_tagged(user, "instruction").split())
        return json.dumps({"difficulty": max(1, min(10, 1 + words // 6)), "rationale": f"{words} words long"})
    if "Put your whole answer" in user:
        question = user.split("Put your whole answer")[0].strip()
        return json.dumps({"response": f"Here is a careful answer to: {question[:80]}"})
    text = _tagged(user, "instruction")
    crash = re.search(r"\[\[crash-once:(.*?)\]\]", text)
    if crash and not os.path.exists(crash.group(1)):
        open(crash.group(1), "w").close()
        raise RuntimeError("scripted crash")
    if "[[backend-down]]" in text:
        return None
    if "[[prose]]" in text:
        return "Sure, here is a harder version: think about it more deeply."
    if "[[copy]]" in text:
        return json.dumps({"instruction": text})
    if "[[refuse]]" in text:
        return json.dumps({"instruction": "I'm sorry, but I can't help with rewriting this instruction."})
    if "[[empty]]" in text:
        return json.dumps({"instruction": ""})
    if "[[huge]]" in text:
        return json.dumps({"instruction": "very " * 8000 + "long"})
    if "[[leak]]" in text:
        return json.dumps({"instruction": f"#Rewritten Prompt#: {text} Also justify each step."})
    # the method (strategy) picks which of the sentences not yet in the text is added
    method = re.search(r"using this method: (.*)", user)
    fresh = [e for e in EXTENSIONS if e not in text] or [EXTENSIONS[-1]]
    extra = fresh[sum(map(ord, method.group(1) if method else "")) % len(fresh)]
    return json.dumps({"instruction": f"{text} {extra}"})


# The evolver's additions, each with words the others lack, so a chain of evolutions is never a copy.
EXTENSIONS = (
    "Justify each part of your answer with one concrete example and state the assumptions you make.",
    "Then compare two alternative approaches, weighing their costs, risks and likely outcomes.",
    "Finally, explain which edge cases would break your solution and how you would detect them early.",
    "Present the result as a numbered plan that a beginner could follow without outside help.",
)
