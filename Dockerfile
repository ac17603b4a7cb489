# duckgate: one binary; DuckDB is linked in statically through cgo, so the
# runtime image needs only libc and libstdc++.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/duckgate ./cmd/duckgate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libstdc++6 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /data duckgate \
    && mkdir -p /data && chown duckgate /data
COPY --from=build /out/duckgate /usr/local/bin/duckgate
USER duckgate
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q ' 200 ' <&3"]
ENTRYPOINT ["duckgate", "serve", "-listen", "0.0.0.0:8080", "-data", "/data"]
