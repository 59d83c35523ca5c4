# qfexbot in a container (docs/operations.md, "Running for weeks").
#   docker build -t qfexbot .
#   docker run -d --name qfexbot --restart on-failure \
#     -v /srv/qfexbot:/var/lib/qfexbot -v /srv/qfexbot-state:/var/lib/qfexbot-state \
#     -v /etc/qfexbot:/etc/qfexbot:ro \
#     --env-file /etc/qfexbot/qfexbot.env qfexbot
# bots.toml: journal = "/var/lib/qfexbot/journal.sqlite" (the volume: it must outlive the container).
FROM python:3.11-slim
RUN useradd --system --home-dir /var/lib/qfexbot --create-home qfexbot \
    && install -d -o qfexbot -g qfexbot /var/lib/qfexbot-state
COPY . /src
RUN pip install --no-cache-dir /src && rm -rf /src
USER qfexbot
WORKDIR /var/lib/qfexbot
# The journal's rollback mark on its own volume: restoring the journal's volume from an older
# copy must not roll the mark back with it (docs/operations.md, "Rollback detection").
ENV QFEXBOT_STATE_DIR=/var/lib/qfexbot-state \
    QFEXBOT_LOCK_DIR=/var/lib/qfexbot/locks \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/qfexbot", "/var/lib/qfexbot-state"]
# SIGTERM (docker stop) is a graceful stop; give it time: docker stop -t 60.
STOPSIGNAL SIGTERM
ENTRYPOINT ["qfexbot"]
CMD ["run", "/etc/qfexbot/bots.toml", "--log-format", "json"]
