# The machine and the versions a bench run measured, for the report.
package VmessBench::Machine;

use strict;
use warnings;

use Exporter 'import';

use VmessBench::Proc qw/tick placement/;
use VmessBench::Servers qw/NGINX/;
use VmessBench::Util qw/read_file/;

our @EXPORT_OK = qw/machine/;

# $top: the tree the module was built from
sub machine {
    my ($top) = @_;
    my $nginx = NGINX;
    my $git = "git -C '$top'";
    my $place = placement();
    my ($mem) = read_file('/proc/meminfo') =~ /^MemTotal:\s+(\d+)/m;
    my $dirty = () = `$git status --porcelain src 2>/dev/null` =~ /\n/g;
    return {
        nproc => `nproc` =~ s/\s+$//r,
        cpu_model => (read_file('/proc/cpuinfo')
                      =~ /^model name\s*:\s*(.*)$/m)[0] // 'unknown',
        kernel => `uname -r` =~ s/\s+$//r,
        mem_kib => $mem,
        nginx => `$nginx -v 2>&1` =~ s/\s+$//r =~ s/^nginx version: //r,
        v2ray => (`v2ray version 2>&1` =~ /^(V2Ray [^\n]*)/m)[0] // '?',
        openssl => `openssl version` =~ s/\s+$//r,
        head => `$git rev-parse --short HEAD 2>/dev/null` =~ s/\s+$//r,
        dirty => $dirty,
        tick => tick(),
        pinned => $place->{pinned},
        load_cpus => $place->{load_cpus},
    };
}

1;
