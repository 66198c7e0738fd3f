"""The model file MLflow stores with every registered version ("models from code"): it names the class to load.

MLflow executes this file when a version is loaded, so the model is rebuilt from the installed `flows.pyfunc` code
instead of being unpickled. Only MLflow runs it; nothing imports it.
"""

import mlflow

from flows.pyfunc import ModelLensModel

mlflow.models.set_model(ModelLensModel())
