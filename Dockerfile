# miniscan: one image for the processor (default command), the mock scanner and the admin CLI.
#
# Two stages because it pays: the build stage leaves behind pip's caches, setuptools' build/
# and egg-info trees and the source checkout; the runtime stage gets only the finished
# virtualenv. Every dependency ships manylinux wheels (grpcio, apsw, psycopg-binary), so
# neither stage needs a compiler.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md requirements.lock ./
COPY contracts/ contracts/
COPY broker/ broker/
COPY workers/ workers/
COPY store/ store/
COPY scanner/ scanner/
COPY supervisor/ supervisor/
COPY demo/ demo/
COPY testkit/ testkit/
COPY commands/ commands/
COPY localpubsub/ localpubsub/
# The pinned dependencies first (requirements.lock: what CI tested), then miniscan itself
# without letting pip pick any other version; `pip check` fails the build if the lock no
# longer satisfies pyproject.toml. The lock includes the postgres extra (psycopg with its
# binary wheel) so that the same image serves docker-compose.scale.yml, where --db is a
# postgresql:// URL.
RUN /opt/venv/bin/pip install --no-deps -r requirements.lock \
    && /opt/venv/bin/pip install ".[postgres]" --no-deps \
    && /opt/venv/bin/pip check


FROM python:3.11-slim

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# A fixed uid, which docker-compose.yml's data-init hands the bind-mounted ./data to.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home miniscan \
    && mkdir -p /app/data \
    && chown miniscan:miniscan /app/data
COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER miniscan
# The supervisor's metrics, /healthz and /readyz.
EXPOSE 9100
# SIGTERM is the supervisor's graceful stop (drain, flush, ack, exit 0); give it time.
STOPSIGNAL SIGTERM
CMD ["miniscan-supervisor"]
