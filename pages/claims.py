# Streamlit runs this only on its legacy first run of a fresh server (a pages/ folder exists); it
# hands over to app.py so a shared deep link (/overview?...) opens without "Page not found".
import dtviz_app

dtviz_app.legacy_entry()
