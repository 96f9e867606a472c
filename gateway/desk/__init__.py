"""Case staff's side: the lead lifecycle, its clocks, site photos, reports; what other dedupe settings would do.

    casework   list and read leads; dispatch, on scene, resolve, close; merge and split; who may do what
    sla        the leads' clocks against targets per category and district, in working hours if configured
    photos     site photos: checked by content, kept by hash
    reports    per team, district or category over a date range
    preview    stored detections replayed under the current and a candidate [dedupe]
"""
