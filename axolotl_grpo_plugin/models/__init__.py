"""Real pretrained models: fetching one without the Hub (fetch.py), and what makes a
`base_model` folder usable (folder.py: a model at all, a gguf file, its end-of-turn token)."""
