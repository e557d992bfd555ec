"""End-to-end workflows, one file each, callable from Python; the CLI is a thin face over them.

* `train.py`: `train(job: JobConfig) -> JobResult` (what `promptft train` runs; `run_dir.py` keeps the
  run folder's state, lock and resume checks)
* `evaluate.py`: `evaluate(model_dir, data_file, ...) -> metrics`
* `predict.py`: `predict(model_dir, input, output, ...) -> rows written`
* `select.py`: `select(data_file, template, label_words, models, ...) -> Selection`
* `models.py`: `models(paths) -> [ModelInfo]`
* `bench.py`: `run(model, tasks, methods, seeds, ...)` and `report(results_dir)`

Import the function from its module (`from promptft.recipes.train import train`): the modules are named
after their workflow, so the package itself exports nothing and stays cheap to import.
"""
