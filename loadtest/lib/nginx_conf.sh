# Renders loadtest/nginx.conf.template; sourced by loadtest/run.sh and loadtest/instructions.sh so both
# fill in every placeholder the same way.
#
# render_nginx_conf TEMPLATE WORKERS PORT UPSTREAM TLS_PORT TLS_UPSTREAM CA RUN_DIR > nginx.conf
# The HTTPS server block is always rendered: nginx resolves its upstream address without connecting,
# so a run that never uses it may point it at an unused port.
render_nginx_conf() {
    local template=$1 workers=$2 port=$3 upstream=$4 tls_port=$5 tls_upstream=$6 ca=$7 run_dir=$8
    sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|$port|" -e "s|@UPSTREAM@|$upstream|" \
        -e "s|@TLS_PORT@|$tls_port|" -e "s|@TLS_UPSTREAM@|$tls_upstream|" -e "s|@CA@|$ca|" \
        -e "s|@RUN_DIR@|$run_dir|g" "$template"
}
