"""Prompts as versioned files in the package (llm/prompts/NAME.yaml).

A prompt's `version` is the file's declared version plus a hash of its contents, so editing a prompt
without bumping the number still changes every cache key that depends on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from instructlake.llm.engine import Messages


class PromptError(ValueError):
    """A prompt file is missing, malformed, or a placeholder has no value."""


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    system: str
    user: str
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def render(self, **values: str) -> Messages:
        """Fill {placeholders} (literal braces elsewhere in the text are left alone)."""
        text = self.user
        for k, v in values.items():
            text = text.replace("{" + k + "}", v)
        missing = [p for p in _placeholders(self.user) if p not in values]
        if missing:
            raise PromptError(f"prompt {self.name}: no value for {', '.join(missing)}")
        msgs: Messages = []
        if self.system.strip():
            msgs.append({"role": "system", "content": self.system.strip()})
        msgs.append({"role": "user", "content": text.strip()})
        return msgs


    def messages_column(self, **columns):
        """The rendered messages as a JSON string column, built in the JVM (no Python UDF): json.loads of
        it equals render() of the same values."""
        from pyspark.sql import functions as F

        text = self.user.strip()
        missing = [p for p in _placeholders(text) if p not in columns]
        if missing:
            raise PromptError(f"prompt {self.name}: no value for {', '.join(missing)}")
        pieces: list = [text]  # literal strings and columns, in order
        for name, col in columns.items():
            new: list = []
            for piece in pieces:
                if not isinstance(piece, str):
                    new.append(piece)
                    continue
                for i, part in enumerate(piece.split("{" + name + "}")):
                    if i:
                        new.append(col)
                    new.append(part)
            pieces = new
        user = F.concat(*[F.lit(x) if isinstance(x, str) else x for x in pieces])
        turns = []
        if self.system.strip():
            turns.append(F.struct(F.lit("system").alias("role"), F.lit(self.system.strip()).alias("content")))
        turns.append(F.struct(F.lit("user").alias("role"), user.alias("content")))
        return F.to_json(F.array(*turns))


def _placeholders(text: str) -> list[str]:
    import re

    return re.findall(r"\{([a-z_]+)\}", text)


def load(name: str) -> Prompt:
    try:
        raw = resources.files("instructlake.llm").joinpath("prompts", f"{name}.yaml").read_text(encoding="utf-8")
    except FileNotFoundError:
        have = sorted(p.name[:-5] for p in resources.files("instructlake.llm").joinpath("prompts").iterdir()
                      if p.name.endswith(".yaml"))
        raise PromptError(f"no prompt {name!r} (prompts: {', '.join(have)})") from None
    data = yaml.safe_load(raw)
    for key in ("name", "version", "user"):
        if key not in data:
            raise PromptError(f"prompt file {name}.yaml lacks {key!r}")
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:8]
    return Prompt(name=data["name"], version=f"{data['name']}/v{data['version']}-{digest}",
                  system=data.get("system", ""), user=data["user"], schema=data.get("schema"))
