"""The demo churn model as MLflow "model from code": probability and label from a scikit-learn pipeline."""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class ChurnModel(PythonModel):
    def load_context(self, context):
        import joblib

        self.pipeline = joblib.load(context.artifacts["pipeline"])

    def predict(self, context, model_input, params=None):
        probability = self.pipeline.predict_proba(model_input)[:, 1]
        return pd.DataFrame({"probability": probability, "label": (probability >= 0.5).astype("int64")})


mlflow.models.set_model(ChurnModel())
