"""Pure ML: face detection, classification, Grad-CAM, training and evaluation.

Imports no Flask, Celery, SQLAlchemy or boto3, so it runs anywhere torch does.
"""
