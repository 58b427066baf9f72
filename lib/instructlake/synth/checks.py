"""Patterns that judge generated text, shared by evolution's rule pre-filter and the multi-turn
expansion's answers (a module of their own, so neither of those imports the other for them)."""

# a rewriting prompt's template marker copied into the rewritten instruction
LEAK = r"(?i)#\s*(rewritten|given|created|new)\s+prompt\s*#|\b(rewritten|given|created)\s+prompt\s*:"
# an answer that opens with a refusal or an AI disclaimer
REFUSAL = (r"(?i)^\W*(i'?m sorry|i am sorry|sorry,|i cannot|i can'?t|i can not|as an ai\b|i'?m unable"
           r"|i am unable)")
