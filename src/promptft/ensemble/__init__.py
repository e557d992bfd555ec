"""Ensembles of prompt models: PET and iPET (`pet.py`), pattern-verbalizer pairs ensembled and distilled.

Sits below the benchmark and the recipes (both run it) and above training; nothing heavy is imported here:
`from promptft.ensemble.pet import run_pet`.
"""
