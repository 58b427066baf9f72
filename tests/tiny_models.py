"""Tiny causal LMs built in the test from a config (random weights, no download) and a word-level tokenizer."""

from __future__ import annotations

from pathlib import Path

WORDS = ("user assistant system : hello world write a poem about the sea python function add two numbers "
         "translate good morning into french tag this instruction json answer").split()


def build_tiny_llama(path: Path, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<s>": 2, "</s>": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                   eos_token="</s>")
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256,
                      pad_token_id=0, bos_token_id=2, eos_token_id=3)
    model = LlamaForCausalLM(cfg).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
# Tokens that close a JSON string or array, and how strongly the tiny chat model leans to them (see below).
CLOSERS = {'"': 0.45, "]": 0.45}


def _byte_level_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS), "instruction tag explanation skill question response difficulty rationale "
              "the of and to in is you for that with an are this be on as it at by or from your not"]
    tok.train_from_iterator(corpus * 50, trainer)
    return tok


def build_tiny_chat_llama(path: Path, seed: int = 0) -> Path:
    """A Llama vLLM's CPU build accepts (head_dim 64: its CPU attention refuses 16), with a byte-level BPE
    tokenizer (any JSON answer can be spelled) and a chat template.

    Its weights are random except for one thing, set by hand so that sampled answers end: every token's
    embedding has a constant first coordinate, and the output head turns that coordinate into a fixed lean
    towards the tokens that close a JSON string or array (CLOSERS). Sampled at temperature 1 under
    a schema, its strings stop after a few tokens instead of running to max_tokens; greedy, a random-weight
    model can cycle inside a string forever. It writes nonsense, in valid JSON."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = _byte_level_tokenizer(512)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=256,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                      max_position_embeddings=4096, pad_token_id=tok.token_to_id("<pad>"),
                      bos_token_id=tok.token_to_id("<s>"), eos_token_id=tok.token_to_id("</s>"),
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        head = model.lm_head.weight
        head.normal_(0.0, 0.4)
        head[:, 0] = 0.0
        for text, lean in CLOSERS.items():
            head[tok.token_to_id(text), 0] = lean
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path
