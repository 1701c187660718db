"""One self-contained HTML report of a tested run, for a person to read.

``reconad test RUN`` (and ``reconad report RUN``) call :func:`write_report` from
:func:`reconad.runs.evaluate_run` with what the test pass already holds in memory (scores,
labels, anomaly maps, masks, the test images), so nothing is scored twice.  It writes
``RUN/report/report.html`` (every image embedded as base64 PNG: the file can be mailed
or archived alone) and the same figures as PNG files beside it:

* the metrics table (image AUROC / AUPR / F1-max, pixel AUROC and PRO when the test set
  has masks, the threshold and its basis, the realised false-alarm and detection rates);
* ROC and precision-recall curves (skipped, with a note, when the test set has one class);
* histograms of normal vs anomalous scores with the threshold line;
* galleries of the most anomalous images, the false alarms and the misses at the
  threshold: each image beside its heat-map overlay, the ground-truth region outlined.

The threshold, its basis (``threshold_basis``) and the p-values (a ``p_value`` column of
``scores.csv``) are read from the run's files when present; the report says so when not.

Modules: ``figures`` (curves, histogram, colour legend), ``gallery`` (which images,
thumbnails, captions, size budget), ``page`` (reading the run, the HTML page).
"""

from reconad.report.page import MAX_EMBEDDED_BYTES, REPORT_DIR, REPORT_FILE, THUMB_SIZE, report_path, write_report

__all__ = ["MAX_EMBEDDED_BYTES", "REPORT_DIR", "REPORT_FILE", "THUMB_SIZE", "report_path", "write_report"]
