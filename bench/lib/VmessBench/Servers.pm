# The servers of a bench run, all on 127.0.0.1: nginx with the module,
# plain nginx proxy_pass, v2ray as a VMess server, bench/relay, and the
# vmess-client targets behind them.  $ctx: {dir, bin, uuid}.
package VmessBench::Servers;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/time sleep/;

use VmessBench::Proc qw/spawn alive stop wait_listening all_listening
                        workers_of/;
use VmessBench::Util qw/note read_file write_file/;

our @EXPORT_OK = qw/NGINX nginx_start nginx_stop v2ray_start v2ray_stop
                    relay_start target transfer_targets/;

use constant NGINX => '/usr/sbin/nginx';
my $stream_so = '/usr/lib/nginx/modules/ngx_stream_module.so';

# %o: name, workers, conns (worker_connections), vmess => [[port, buf,
# vmess_stats (on by default)],..] with users (file name) or the one uuid;
# plain => [[port, buf, up],..]; api => port: the vmess_api on it;
# log_level: of the error log (warn if undef)
sub nginx_start {
    my ($ctx, %o) = @_;
    my $d = "$ctx->{dir}/$o{name}";
    mkdir $d;
    chmod 0755, $d;
    my ($conf, @ports) = nginx_conf($ctx, $d, %o);
    write_file("$d/nginx.conf", $conf);
    my $pid = spawn("nginx $o{name}", "$d/stderr.log", NGINX, '-p', "$d/",
                    '-c', 'nginx.conf', '-e', "$d/error.log");
    my @w;
    my $end = time() + 30;
    while (time() < $end) {
        die "nginx $o{name} exited:\n" . read_file("$d/error.log")
            . read_file("$d/stderr.log") unless alive($pid);
        @w = workers_of($pid);
        last if @w == $o{workers} && -s "$d/nginx.pid"
                && all_listening(@ports);
        sleep 0.05;
    }
    die "nginx $o{name} did not start\n" unless @w == $o{workers};
    return {name => $o{name}, pid => $pid, pids => \@w, dir => $d};
}

# nginx.conf for nginx_start's %o in directory $d: (text, its ports)
sub nginx_conf {
    my ($ctx, $d, %o) = @_;
    my $bin = $ctx->{bin};
    my $load = -f $stream_so ? "load_module $stream_so;\n" : '';
    $load .= "load_module $bin/ngx_stream_vmess_module.so;\n" if $o{vmess};
    my $users = $o{users} ? "vmess_user_file $o{users};"
                          : "vmess_user $ctx->{uuid};";
    my $servers = '';
    my @ports;
    for my $v (@{$o{vmess} // []}) {
        my ($port, $buf, $stats) = @$v;
        my $counters = $stats ? "vmess_stats $stats;" : '';
        push @ports, $port;
        $servers .= <<"EOF";
    server {
        listen 127.0.0.1:$port backlog=4096;
        vmess on;
        $users
        $counters
        vmess_allow_private on;
        proxy_buffer_size ${buf}k;
        proxy_pass \$vmess_target;
    }
EOF
    }
    for my $p (@{$o{plain} // []}) {
        my ($port, $buf, $up) = @$p;
        push @ports, $port;
        $servers .= <<"EOF";
    server {
        listen 127.0.0.1:$port backlog=4096;
        proxy_buffer_size ${buf}k;
        proxy_pass 127.0.0.1:$up;
    }
EOF
    }
    my $zone = $o{vmess} ? "    vmess_zone vmess:64m;\n" : '';
    my $conns = $o{conns} // 1024;
    my $level = $o{log_level} // 'warn';
    my $http = '';
    if ($o{api}) {
        push @ports, $o{api};
        $http = <<"EOF";
http {
    access_log off;
    client_body_temp_path $d/body;
    server {
        listen 127.0.0.1:$o{api};
        location /vmess/ { vmess_api zone=vmess; }
    }
}
EOF
    }
    my $conf = <<"EOF";
${load}daemon off;
worker_processes $o{workers};
error_log $d/error.log $level;
pid $d/nginx.pid;
events { worker_connections $conns; }
${http}stream {
$zone$servers}
EOF
    return ($conf, @ports);
}

sub nginx_stop {
    my ($srv) = @_;
    stop($srv->{pid}, 'QUIT');
    kill 'KILL', grep { -e "/proc/$_" } @{$srv->{pids}};
    my @bad = grep { /\[(alert|crit|emerg)\]|exited on signal/ }
        split /\n/, read_file("$srv->{dir}/error.log");
    note("nginx $srv->{name}: " . scalar(@bad) . " alert lines in its "
         . "error.log, first: $bad[0]") if @bad;
}

# $access (--v2ray-access-log): v2ray keeps its access log (and its error
# log at "error": v2ray writes no access log at "none") to tell why a
# session had no answer; off in measured runs, as logging costs
sub v2ray_start {
    my ($ctx, $name, $port, $ids, $access) = @_;
    my $dir = $ctx->{dir};
    my $log = $access ? "$dir/$name.access" : 'none';
    my $level = $access ? 'error' : 'none';
    my $clients = join ",\n",
        map { qq(      {"id": "$_", "alterId": 0}) } @$ids;
    write_file("$dir/$name.json", <<"EOF");
{
  "log": {"loglevel": "$level", "access": "$log"},
  "inbounds": [{"listen": "127.0.0.1", "port": $port, "protocol": "vmess",
    "settings": {"clients": [
$clients
    ]}}],
  "outbounds": [{"protocol": "freedom", "settings": {}}]
}
EOF
    my $pid = spawn("v2ray $name", "$dir/$name.log", 'v2ray', '-config',
                    "$dir/$name.json");
    wait_listening($pid, 60, $port)
        or die "v2ray $name did not start:\n" . read_file("$dir/$name.log");
    return {name => $name, pid => $pid, pids => [$pid],
            access => $access ? $log : undef};
}

sub v2ray_stop {
    my ($srv) = @_;
    stop($srv->{pid}, 'TERM');
    return unless $srv->{access};
    my %why;
    for (split /\n/, read_file($srv->{access})) {
        $why{$1}++ if /rejected\s.*> ([^>]+?)\s*$/;
    }
    note("v2ray $srv->{name} rejected sessions of this run: "
         . join(', ', map { "$why{$_} \"$_\"" } sort keys %why)) if %why;
}

# bench/relay for one cipher, direction and buffer, in as many processes
# as nginx has workers; returns a server as bulk_one takes it, with the port
sub relay_start {
    my ($ctx, $sec, $dirn, $buf, $target, $processes) = @_;
    my ($pid, $port) = start_listener("relay $sec $dirn $buf",
        "$ctx->{dir}/relay-$sec-$dirn-$buf-" . int(rand 1e9) . '.log',
        "$ctx->{bin}/relay", $target, $buf, $sec, $dirn, $processes);
    return ({name => "relay-$sec-$dirn-$buf",
             pids => [$pid, workers_of($pid)]}, $port);
}

# a target of vmess-client: echo, sink, source; returns (pid, port)
sub target {
    my ($ctx, $kind) = @_;
    return start_listener("target $kind",
        "$ctx->{dir}/target-$kind-" . int(rand 1e9) . '.log',
        "$ctx->{bin}/vmess-client", "serve-$kind", '127.0.0.1:0');
}

# a sink for uploads and a source for downloads: ({upload => port,
# download => port}, their pids)
sub transfer_targets {
    my ($ctx) = @_;
    my ($sink_pid, $sink) = target($ctx, 'sink');
    my ($source_pid, $source) = target($ctx, 'source');
    return ({upload => $sink, download => $source}, $sink_pid, $source_pid);
}

# a program that says "listening PORT" on its output (a fresh file each
# time, so that an old port is never read): (pid, port)
sub start_listener {
    my ($what, $out, @cmd) = @_;
    my $pid = spawn($what, $out, @cmd);
    my $end = time() + 10;
    while (time() < $end) {
        my ($port) = read_file($out) =~ /listening (\d+)/;
        return ($pid, $port) if $port;
        die "$what exited: " . read_file($out) . "\n" unless alive($pid);
        sleep 0.02;
    }
    die "$what did not start\n";
}

1;
