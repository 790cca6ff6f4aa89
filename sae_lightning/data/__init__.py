"""Texts to training batches: sources (where texts come from) -> embed (texts to vectors, in
shards) -> store (the memory-mappable embedding store on disk) -> datamodule (batches for the
Trainer). model_packages assembles the offline all-mpnet-base-v2 from its packages."""
