"""The road to production: distillation and pruning (smaller models), quantization, ONNX export, serving
and bulk prediction. Nothing heavy is imported here: import the module you need, e.g.
`from promptft.deploy.onnx_export import export_onnx`.

* `distill.py`: soft labels from a prompt model (or an ensemble) and the student's training data
* `prune.py`: structured pruning of MLP neurons and attention heads by importance on dev data
* `onnx_export.py`: a saved classifier -> a self-contained ONNX folder (graph, prompt/labels JSON, tokenizer)
* `onnx_runtime.py`: `OnnxClassifier`, the same predict/predict_proba/evaluate API on onnxruntime
* `quantize.py`: torch int8 dynamic quantization (CPU) and ONNX Runtime int8
* `batching.py`: dynamic batching of concurrent requests (an asyncio queue feeding one worker thread)
* `serve.py`: the FastAPI app behind `promptft serve`
* `bulk.py`: streamed, resumable, data-parallel prediction of large files
"""
