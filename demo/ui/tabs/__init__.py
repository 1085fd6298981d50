"""The page's tabs, one module each: `TITLE` and `build(context)`; listed in demo/ui/app.py."""
