"""The Gradio app: everything in the project that imports gradio lives in this package.

`app.build_app(settings)` builds the three tabs (Train, Charts, Predict & evaluate); the
*_tab modules hold layouts, the *_handlers modules the behaviour (each handler calls into
`vetllm`), `charts` and `views` are pure builders of figures and text.
"""
