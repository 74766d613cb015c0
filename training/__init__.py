"""Learning and measuring: labelled datasets, augmentation, self-blended fakes, fitting,
calibration, evaluation and model cards. Imports the detector; the detector never imports it."""
