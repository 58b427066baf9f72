"""Open fine-grained tags: InsTag-style intent and knowledge phrases taken from the instruction itself.

The taxonomy tagger can only name one of its 276 tags; the paper's tagger writes its own (21,378 of them
in 7M samples) and normalize-tags then has to cut, merge and cluster them. These phrases give the embedded
tagger open tags of that kind, with no model and no network:

* intent: the task the instruction's leading verb asks for, named after its object, in the form InsTag's
  tags take ("Write a short poem about rain" -> `poem writing`, "Translate this into French" ->
  `translation`);
* knowledge: the instruction's content phrases, RAKE-style (runs of words between stop words and
  punctuation), generic task words ("sentence", "following", "brief") trimmed from their edges, the
  head noun singular, at most three words each ("the French Revolution" -> `french revolution`, "renewable
  energy sources" -> `renewable energy source`), longer phrases first.

Most phrases are rare, as most of the paper's raw tags were: the frequency cut, the synonym merge and
the clusters of normalize-tags decide which of them become canonical tags. VERSION is part of the tagger's
version, so changing the word lists re-tags the pool.
"""

from __future__ import annotations

import re

VERSION = "open-1"

# how far into the instruction phrases are taken from: the task is stated first; a long input after it
# (an article to summarize, code to fix) would add phrases about the input, not the task
HEAD_CHARS = 300

_WORD = re.compile(r"[a-z][a-z0-9+#]*(?:['.\-][a-z0-9+#]+)*|\d+(?:\.\d+)?|[^\sa-z0-9]")

# the leading verb -> the noun InsTag-style intent tags end with
INTENTS = {
    "write": "writing", "compose": "writing", "draft": "writing", "rewrite": "rewriting",
    "paraphrase": "paraphrasing", "edit": "editing", "proofread": "proofreading", "correct": "correction",
    "generate": "generation", "create": "creation", "produce": "generation", "design": "design",
    "develop": "development", "build": "building", "implement": "implementation", "construct": "construction",
    "explain": "explanation", "describe": "description", "summarize": "summarization",
    "summarise": "summarization", "translate": "translation", "classify": "classification",
    "categorize": "classification", "categorise": "classification", "calculate": "calculation",
    "compute": "calculation", "solve": "solving", "compare": "comparison", "analyze": "analysis",
    "analyse": "analysis", "evaluate": "evaluation", "identify": "identification", "extract": "extraction",
    "suggest": "suggestion", "recommend": "recommendation", "predict": "prediction", "convert": "conversion",
    "sort": "sorting", "debug": "debugging", "fix": "fixing", "optimize": "optimization",
    "brainstorm": "brainstorming", "plan": "planning", "answer": "answering", "find": "search",
    "detect": "detection", "outline": "outlining", "simplify": "simplification", "format": "formatting",
}
# before the object: skipped when looking for the intent's object
_LEAD = {"a", "an", "the", "me", "us", "my", "our", "your", "some", "this", "that", "these", "those", "any",
         "one", "two", "three", "four", "five", "ten", "several", "few", "couple", "of", "new", "following",
         "given", "short", "brief", "simple", "good", "detailed", "list", "please"}
STOP = {
    "a", "an", "the", "and", "or", "but", "nor", "if", "then", "else", "so", "than", "as", "at", "by", "for",
    "from", "in", "into", "of", "off", "on", "onto", "out", "over", "to", "up", "with", "within", "without",
    "about", "above", "after", "against", "along", "among", "around", "before", "behind", "below", "between",
    "during", "except", "through", "under", "until", "upon", "via", "per", "is", "are", "was", "were", "be",
    "been", "being", "am", "do", "does", "did", "doing", "have", "has", "had", "having", "can", "could",
    "should", "would", "will", "shall", "may", "might", "must", "i", "you", "he", "she", "it", "we", "they",
    "me", "him", "her", "us", "them", "my", "your", "his", "its", "our", "their", "mine", "yours", "this",
    "that", "these", "those", "who", "whom", "whose", "which", "what", "when", "where", "why", "how", "all",
    "any", "both", "each", "every", "few", "more", "most", "other", "some", "such", "no", "not", "only",
    "own", "same", "too", "very", "just", "also", "there", "here", "please", "it's", "i'm", "don't", "etc",
    "e.g", "i.e", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "let",
    "lets", "let's", "like", "using", "use", "used", "based", "make", "made", "get", "give", "given", "tell",
    "provide", "include", "including", "list", "name", "show", "need", "want", "take", "come", "go", "see",
    "know", "think", "help", "try", "keep", "put", "say", "said", "way", "ways", "well", "much", "many",
    "new", "good", "best", "better", "different", "following", "follow", "respond",
    "return", "output", "input", "yes", "while", "because", "whether", "define", "reword",
    "convey", "conveys", "follows", "associated", "related", "takes", "makes", "gives", "uses", "means",
    "mean", "describes", "explains", "contains", "called", "write", "written", "measure", "determine",
    "add", "select", "complete", "change", "choose", "pick", "state", "fill", "replace",
    "turn", "become", "someone", "somebody", "people", "person", "anyone", "everyone",
    *INTENTS,
}
# plurals that singular() must leave alone
_INVARIANT = {"clothes", "news", "series", "species", "means", "lens", "chess", "bus", "gas", "data"}
# task words that say how, not what: trimmed from a phrase's edges and never a phrase alone
GENERIC = {
    "sentence", "sentences", "paragraph", "paragraphs", "text", "word", "words", "example", "examples",
    "response", "answer", "answers", "question", "questions", "statement", "information", "thing", "things",
    "something", "type", "types", "kind", "kinds", "item", "items", "number", "numbers", "brief", "short",
    "long", "detailed", "simple", "overview", "summary", "description", "explanation", "article", "passage",
    "task", "instruction", "instructions", "format", "following", "given", "above", "below", "input",
    "output", "result", "results", "version", "line", "lines", "part", "parts", "point", "points", "step",
    "steps", "idea", "ideas", "tip", "tips", "topic", "topics", "specific", "possible", "main", "key",
    "important", "common", "interesting", "unique", "creative", "appropriate", "relevant", "correct",
    "sure", "less", "least", "first", "second", "third", "last", "next", "whole", "entire", "phrase",
    "fact", "facts", "benefit", "benefits", "importance", "meaning", "difference", "differences", "element",
    "elements", "situation", "situations", "term", "terms", "concept", "concepts", "reason", "reasons",
}
# a task noun that says little alone: with no object it names the text it works on
_TEXT_TASKS = {"generation", "rewriting", "editing", "classification", "summarization", "paraphrasing",
               "writing", "creation", "translation", "proofreading", "correction", "simplification"}
MAX_WORDS = 3


def singular(word: str) -> str:
    """English plural to singular, for the common endings only (a phrase's head noun)."""
    if len(word) <= 3 or word in _INVARIANT or word.endswith(("ss", "us", "is", "ics", "'s")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") else word


def words(text: str) -> list[str]:
    """Lower-cased words, numbers and single punctuation marks of the instruction's head."""
    return _WORD.findall(text[:HEAD_CHARS].lower())


def _is_word(tok: str) -> bool:
    return tok[0].isalpha()


def _content(tok: str) -> bool:
    """A word a phrase can hold: not a stop word, a mark, a letter alone or an adverb in -ly."""
    return _is_word(tok) and tok not in STOP and len(tok) > 1 and not (tok.endswith("ly") and len(tok) > 4)


def _generic(tok: str) -> bool:
    """A GENERIC word, also as the singular a phrase's head becomes ("seconds" is "second")."""
    return tok in GENERIC or singular(tok) in GENERIC


def intent(toks: list[str]) -> str | None:
    """`<object> <task noun>` from the leading verb and the head of its object; the task noun alone when
    the object is a pronoun or missing; None when the instruction does not open with a known verb."""
    i = 1 if toks[:1] == ["please"] else 0
    if i >= len(toks) or toks[i] not in INTENTS:
        return None
    noun = INTENTS[toks[i]]
    run = []
    for tok in toks[i + 1:i + 8]:
        if not run and (tok in _LEAD or not _is_word(tok) and tok[0].isdigit()):
            continue
        if not _content(tok):
            break
        run.append(tok)
    while run and _generic(run[-1]):
        run.pop()
    if run:
        return f"{singular(run[-1])} {noun}"
    return f"text {noun}" if noun in _TEXT_TASKS else noun


def phrases(toks: list[str]) -> list[str]:
    """Knowledge phrases: runs of content words, generic words trimmed off both edges, at most MAX_WORDS
    (the last ones: an English noun phrase ends with its head), head noun singular; in order of
    appearance, each once."""
    out, run = [], []
    for tok in [*toks, "."]:
        if _content(tok):
            run.append(tok)
            continue
        while run and _generic(run[0]):
            run.pop(0)
        while run and _generic(run[-1]):
            run.pop()
        if run:
            p = [*run[-MAX_WORDS:-1], singular(run[-1])]
            if len(p) > 1 or len(p[0]) >= 3:
                phrase = " ".join(p)
                if phrase not in out:
                    out.append(phrase)
        run = []
    return out


def open_tags(text: str | None, max_phrases: int = 3, with_intent: bool = True) -> list[str]:
    """The instruction's intent tag (if any) then up to max_phrases knowledge phrases, longer ones first
    (a multi-word phrase names a skill or topic more precisely than a single word), ties by position."""
    if not text:
        return []
    toks = words(text)
    tags = []
    it = intent(toks) if with_intent else None
    if it:
        tags.append(it)
    # the intent's object alone says less than the intent does ("poem" beside "poem writing")
    found = [p for p in phrases(toks) if not (it and it.startswith(p + " ") and " " not in p)]
    ranked = sorted(range(len(found)), key=lambda i: (-min(found[i].count(" ") + 1, 2), i))
    for i in ranked:
        if len(tags) >= max_phrases + (1 if it else 0):
            break
        if found[i] not in tags:
            tags.append(found[i])
    return tags
