"""A tiny RoBERTa question-answering model built from nothing, for tests of the default reader's
tokenizer family: a byte-level BPE tokenizer trained on test text (accents, CJK, emoji), wrapped
as a RoBERTa fast tokenizer with RoBERTa's post-processor (`<s> q </s></s> c </s>`, no
token_type_ids, offsets trimmed after `Ġ`), and a random-initialised `RobertaForQuestionAnswering`
saved as safetensors. Its answers are random; the mechanics around them are what is tested."""

from __future__ import annotations

from pathlib import Path

TEXT = [
    "The Harborview Tool Library opened in 2019. Members borrow drills, saws and ladders for a week.",
    "Late returns cost two dollars a day. The library is run by volunteers from the neighbourhood.",
    "Le café de la rue Müller sert une crème brûlée naïve, dit Noël Ørsted.",
    "東京は日本の首都です。図書館は毎週土曜日に開きます。",
    "The 🔧 repair café 🎉 meets monthly; bring a broken toaster ☕ or a bike 🚲.",
    "Who, what, when, where? 10km, 3.5 kg, 75°, e-mail: info@example.org, naïve co-operation.",
]


def build_tiny_roberta(folder: Path, seed: int = 0) -> Path:
    """Write the tokenizer and a random 2-layer RoBERTa QA model to `folder`; returns it."""
    import torch
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import RobertaConfig, RobertaForQuestionAnswering, RobertaTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXT * 20, vocab_size=600, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")), trim_offsets=True, add_prefix_space=False)
    tokenizer = RobertaTokenizerFast(tokenizer_object=bpe._tokenizer, model_max_length=512)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=520, pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2, type_vocab_size=1,
    )  # fmt: skip
    RobertaForQuestionAnswering(config).save_pretrained(folder, safe_serialization=True)
    return folder
