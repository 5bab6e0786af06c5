# One image for sagamesh and the demo services (docker-compose.yml and deploy/kubernetes pick the
# command):
#   node dist/src/main.js                  sagamesh (the default)
#   node dist/demo/main.js <hotel|flight|car|trips>
# It never runs Envoy: the compose `envoy` service uses the official envoyproxy/envoy image, and in
# Kubernetes the pod's Istio sidecar (or Envoy Gateway) is the Envoy (docs/istio.md).
#
# Two stages: the first installs every dependency and compiles, then drops the dev dependencies;
# the second copies only package.json, the production node_modules and dist/.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# The package's postinstall (scripts/install-envoy.js) would pip-install Envoy into the image.
# With ENVOY_BIN set it only notes that binary and returns; other packages' install scripts (native
# modules) still run, which `npm ci --ignore-scripts` would skip.
ENV ENVOY_BIN=/bin/true
COPY package.json package-lock.json ./
COPY scripts/install-envoy.js scripts/install-envoy.js
RUN npm ci --no-audit --no-fund
# Only what `npm run build` compiles (tsconfig.build.json: src, demo, scripts). Listed one by one:
# the repository has no .dockerignore, and `COPY . .` would drag in node_modules and .venv.
COPY tsconfig.json tsconfig.build.json ./
COPY src src
COPY demo demo
COPY scripts scripts
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
# etcd's API (a trimmed rpc.proto), loaded at run time by the etcd saga log (SAGAMESH_STORE=etcd://…).
COPY protos protos
# Saga definitions are mounted here (docker-compose.yml) or from a ConfigMap (Kubernetes).
ENV SAGAMESH_SAGAS_DIR=/etc/sagamesh/sagas
# The SQLite saga log: a directory the `node` user owns (the image's /app is root's). Kubernetes
# mounts an emptyDir here (overlays/sqlite-single-pod); SAGAMESH_STORE=etcd://… (the sidecar
# component's default) or postgres://… replaces it.
RUN mkdir -p /var/lib/sagamesh && chown node:node /var/lib/sagamesh
ENV SAGAMESH_STORE=sqlite:/var/lib/sagamesh/sagamesh.db
# The defaults are loopback-only: ext_proc gRPC on 127.0.0.1:50051 and the admin HTTP server
# (/healthz, /readyz, /metrics) on 127.0.0.1:9090, reachable from the Envoy that shares the network
# namespace (a pod's sidecar, compose's `network_mode: service:envoy`) and nobody else.
EXPOSE 50051 9090
# The image's unprivileged `node` user (uid 1000); nothing here needs root.
USER node
# Healthy once the admin server answers /healthz on SAGAMESH_ADMIN_ADDR's port (a wildcard bind
# address is asked on loopback). The demo services run from this image too: compose gives them
# their own healthcheck.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["node", "-e", "const a=process.env.SAGAMESH_ADMIN_ADDR||'127.0.0.1:9090';const i=a.lastIndexOf(':');let h=a.slice(0,i).replace(/^\\[|\\]$/g,'');if(h===''||h==='0.0.0.0'||h==='::')h='127.0.0.1';require('http').get({host:h,port:Number(a.slice(i+1)),path:'/healthz',timeout:2000},r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
CMD ["node", "dist/src/main.js"]
