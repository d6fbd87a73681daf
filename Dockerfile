# Build: the libxml crate needs libclang (bindgen) and the libxml2 headers.
FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev libxml2-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked

# Run: only libxml2 at run time. The data directory (registry, signing key, admin socket)
# is a volume owned by an unprivileged user. Initialise it first with the operator's key:
#   docker run -v stelselnode:/var/lib/stelselnode -v $PWD/keys:/keys:ro IMAGE init --key /keys/key.pem --cert /keys/cert.pem
# then serve with the TLS certificate and key given by environment (SIGHUP, i.e.
# `docker kill -s HUP`, reloads them):
#   docker run -v stelselnode:/var/lib/stelselnode -v $PWD/tls:/tls:ro \
#     -e STELSELNODE_TLS_CERT=/tls/cert.pem -e STELSELNODE_TLS_KEY=/tls/key.pem -p 8080:8080 IMAGE
# For a demo instead (development CA in the volume): IMAGE serve --listen 0.0.0.0:8080 --demo
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxml2 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/stelselnode --create-home stelselnode
COPY --from=build /src/target/release/stelselnode /usr/local/bin/stelselnode
USER stelselnode
ENV STELSELNODE_DATA=/var/lib/stelselnode/data
VOLUME /var/lib/stelselnode
EXPOSE 8080
# Liveness and the publication state; -k: the check runs inside the container, against
# whatever certificate the operator mounted.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD curl -fsk https://127.0.0.1:8080/health || curl -fs http://127.0.0.1:8080/health || exit 1
ENTRYPOINT ["stelselnode"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
