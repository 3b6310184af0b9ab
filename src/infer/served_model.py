"""The models-from-code file of the served model (`mlflow.pyfunc.log_model(python_model=<this file>)`).

MLflow copies this file into the logged model and runs it when the model is loaded
(`mlflow models serve`, `mlflow.pyfunc.load_model`); `set_model` names the object to
serve. The code it imports travels with the model as well (the `src` package, logged as
`code_paths` by `src.tracking.logged_model`), so no pickle ties the model to one Python
or one checkout, and the server needs nothing of this repository at run time. The model
itself is `src.infer.image_model.ZeroDCEImages`; this file only names it, since
everything that imports it registers it with MLflow as a side effect.
"""

from mlflow.models import set_model

from src.infer.image_model import ZeroDCEImages

set_model(ZeroDCEImages())
