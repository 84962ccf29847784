# Development shell: Node.js 24 with pnpm (corepack), Redis, and PostgreSQL 16 with TimescaleDB, all local to this
# checkout.
#
#   nix develop                                   # enter the shell (first run writes flake.lock; commit it)
#   dev-services-up                               # PostgreSQL on 127.0.0.1:5432 (data in ./.dev/pg), Redis on 127.0.0.1:6379 (./.dev/redis)
#   pnpm install --frozen-lockfile && pnpm dev    # the worker, with pretty logs; `pnpm test` uses the same servers
#   dev-services-down                             # stop both (data stays in ./.dev; delete it to start over)
#
# `pnpm` is corepack's shim: it runs the version package.json pins (packageManager). The scripts run on the `node`
# dev dependency (Node 24 from the npm registry, first on their PATH), a generic Linux build: on NixOS it needs
# nix-ld (programs.nix-ld.enable = true); Nix on other systems runs it as it is.
#
# TimescaleDB from nixpkgs carries the Timescale License (unfree, so it is allowed explicitly below and
# built locally rather than fetched from the binary cache). postgresqlPackages.timescaledb_apache is the
# Apache-only build (hypertables, no compression) if that build is unwanted.
{
  description = "processor: Redis Stream → device state → PostgreSQL/TimescaleDB worker";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f (import nixpkgs {
        inherit system;
        config.allowUnfreePredicate = pkg: builtins.elem (nixpkgs.lib.getName pkg) [ "timescaledb" ];
      }));
    in
    {
      packages = forAllSystems (pkgs:
        let
          postgresql = pkgs.postgresql_16.withPackages (p: [ p.timescaledb ]);
        in
        {
          inherit postgresql;

          dev-services-up = pkgs.writeShellApplication {
            name = "dev-services-up";
            runtimeInputs = [ postgresql pkgs.redis pkgs.coreutils ];
            text = ''
              root="''${PROCESSOR_ROOT:-$PWD}/.dev"
              pgdata="$root/pg"
              mkdir -p "$root/redis"

              if [ ! -s "$pgdata/PG_VERSION" ]; then
                echo "initialising PostgreSQL in $pgdata"
                initdb --pgdata="$pgdata" --username=postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
                # TCP only (no Unix socket: the default socket directory may not exist or be writable).
                cat >> "$pgdata/postgresql.conf" <<EOF
              listen_addresses = '127.0.0.1'
              port = 5432
              unix_socket_directories = '''
              shared_preload_libraries = 'timescaledb'
              EOF
              fi

              if pg_ctl --pgdata="$pgdata" status >/dev/null 2>&1; then
                echo "PostgreSQL already running"
              else
                pg_ctl --pgdata="$pgdata" --log="$root/pg.log" --wait start
              fi

              if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then
                echo "Redis already running"
              else
                redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --dir "$root/redis" \
                  --pidfile "$root/redis/redis.pid" --logfile "$root/redis/redis.log" --save "" --appendonly no
                for _ in $(seq 1 50); do
                  if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then break; fi
                  sleep 0.1
                done
              fi

              echo "PostgreSQL: postgres://postgres@127.0.0.1:5432/postgres   Redis: redis://127.0.0.1:6379"
            '';
          };

          dev-services-down = pkgs.writeShellApplication {
            name = "dev-services-down";
            runtimeInputs = [ postgresql pkgs.redis ];
            text = ''
              root="''${PROCESSOR_ROOT:-$PWD}/.dev"
              if [ -s "$root/pg/PG_VERSION" ] && pg_ctl --pgdata="$root/pg" status >/dev/null 2>&1; then
                pg_ctl --pgdata="$root/pg" --mode=fast --wait stop
              fi
              if [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; then
                redis-cli -h 127.0.0.1 -p 6379 shutdown nosave || true
                echo "Redis stopped"
              fi
            '';
          };
        });

      devShells = forAllSystems (pkgs:
        let
          own = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          default = pkgs.mkShell {
            packages = [
              pkgs.nodejs_24
              pkgs.corepack_24
              own.postgresql
              pkgs.redis
              own.dev-services-up
              own.dev-services-down
            ];
            shellHook = ''
              export PROCESSOR_ROOT="$PWD"
              # psql and pg_isready reach the dev server over TCP (it has no Unix socket).
              export PGHOST=127.0.0.1 PGPORT=5432 PGUSER=postgres
            '';
          };
        });
    };
}
