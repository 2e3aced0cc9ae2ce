# lib/exports.txt -> GNU ld version script. The first node hides everything else (local: *).
function close_node() {
    if (node == "") return
    if (parent == "") print "  local: *;"
    printf "}%s;\n", parent == "" ? "" : " " parent
}
/^[ \t]*(#|$)/ { next }
/^\[.*\]$/ {
    close_node()
    parent = node
    node = substr($0, 2, length($0) - 2)
    printf "%s {\n  global:\n", node
    next
}
{ printf "    %s;\n", $1 }
END { close_node() }
