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
# (for a demo instead: IMAGE serve --listen 0.0.0.0:8080 --demo)
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxml2 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/stelselnode --create-home stelselnode
COPY --from=build /src/target/release/stelselnode /usr/local/bin/stelselnode
USER stelselnode
ENV STELSELNODE_DATA=/var/lib/stelselnode/data
VOLUME /var/lib/stelselnode
EXPOSE 8080
ENTRYPOINT ["stelselnode"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
