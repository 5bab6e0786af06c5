# One image for sagamesh and the demo services (docker-compose.yml picks the command):
#   node dist/src/main.js                  sagamesh
#   node dist/demo/main.js <hotel|flight|car|trips>
# It never runs Envoy: the compose `envoy` service uses the official envoyproxy/envoy image.

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
# Saga definitions are mounted here (docker-compose.yml) or from a ConfigMap (Kubernetes).
ENV SAGAMESH_SAGAS_DIR=/etc/sagamesh/sagas
# The image's unprivileged `node` user (uid 1000); nothing here needs root.
USER node
CMD ["node", "dist/src/main.js"]
