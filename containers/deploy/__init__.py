"""Deploy: the code that puts an approved model package on the SageMaker endpoint (`deploy.py`).

The same module runs as the deployment Lambda (handler `deploy.handler`, packaged from this folder alone),
behind the pipeline's Deploy step and `cardamage deploy`. It imports only the standard library and boto3.
The functions that read what an endpoint serves ship beside it in the same folder and import it: the
champion function (`champion.py`) and the drift monitor's starter and metrics (`monitor_start.py`,
`monitor_metrics.py`).
"""
