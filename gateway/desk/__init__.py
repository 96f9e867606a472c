"""Case staff's side: leads to list, show, claim and close; what other dedupe settings would do.

    casework   list, read, claim and close leads
    preview    stored detections replayed under the current and a candidate [dedupe]
"""
