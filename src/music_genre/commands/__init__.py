"""The project's commands outside ``kedro run``: ``genre-predict`` (:mod:`.predict`),
``genre-serve`` (:mod:`.serve`) and the notebooks' helpers (:mod:`.notebooks`).

Not named ``cli``: Kedro imports ``<package>.cli`` as the project's own ``kedro`` commands."""
