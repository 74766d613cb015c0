"""Pure ML for serving: face detection (MTCNN), the classifier registry, Grad-CAM, overlays and
the Predictor. Imports nothing of Unmask outside itself, and no Flask, Celery, SQLAlchemy or
boto3, so it runs anywhere torch does. Learning and measuring live in `unmask.training`.
"""
