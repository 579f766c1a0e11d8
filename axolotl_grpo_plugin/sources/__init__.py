"""What stats, evaluation and the config checks share so they see exactly what the trainer sees:
dataset rows (`data`), the chat template (`chat_template`), the tokenizer (`tokenizer`) and the
dataset transform (`transforms`), each resolved with Axolotl 0.19's semantics."""
