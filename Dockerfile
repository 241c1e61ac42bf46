# dumpflow's binaries: workers (the Temporal worker) and starter (the
# operator CLI, which also runs the local demo stack).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/workers ./workers && \
    CGO_ENABLED=0 go build -trimpath -o /out/starter ./starter

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tzdata && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/workers /out/starter /usr/local/bin/
COPY deploy/examples /app/deploy/examples
WORKDIR /app
ENTRYPOINT ["starter"]
