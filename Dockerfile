# sriov-dra node image: one static binary.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /sriov-dra ./cmd/sriov-dra

FROM gcr.io/distroless/static-debian12
COPY --from=build /sriov-dra /usr/bin/sriov-dra
ENTRYPOINT ["/usr/bin/sriov-dra"]
