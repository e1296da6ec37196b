/*
 * pst_transport.h -- the transport table: which transport (router
 * module) carries a recipient's mail, to which next hop.
 *
 *   transport KEY ACTION [ARG ...];        top level, any number
 *
 * KEY: "*" (every recipient), "example.com" (that domain),
 * ".example.com" (its subdomains, not itself), "~REGEX" (PCRE2 against
 * the domain, caseless), "user@example.com" (that recipient, caseless).
 * The first rule that matches, in the order written, decides.
 *
 * ACTION: a loaded router module by its name or the part after its
 * first '_' ("mx" is relay_mx, "smarthost" relay_smarthost, "lmtp"
 * deliver_lmtp), with an optional next hop given to the router instead
 * of the domain (relay_mx: another domain or "[addr]"; relay_smarthost
 * and deliver_lmtp: their host list's name, see the modules);
 * "reject CODE [X.Y.Z] TEXT..." (the recipient fails with that reply);
 * "hold" (the message is put on hold as it enters the queue, then the
 * rules after this one decide where it goes once released).
 *
 * A recipient's destination (the engine's unit of scheduling,
 * concurrency and connection reuse) is a domain or "[addr]" for the MX
 * router (without relay_mx loaded: the first router, with an empty
 * next hop: its default hosts), "NAME:NEXTHOP" for another transport
 * (NEXTHOP empty: the module's default), "reject:N" for the table's
 * rule N; pst_transport_dest() builds it and pst_transport_router()
 * reads it back.  Destinations compare caseless.
 */

#ifndef PST_TRANSPORT_H
#define PST_TRANSPORT_H

extern const pst_module_t  pst_transport_module;

#define PST_TRANSPORT_DEST_MAX   512

/* The destination of a recipient (addr: its address; domain: its
 * domain, A-labels, lower case) into out (PST_TRANSPORT_DEST_MAX);
 * *hold set when a hold rule matched on the way.  Returns the length,
 * 0 when no rule matched (the destination is the domain). */
size_t pst_transport_dest(pst_cycle_t *cycle, const pst_str_t *addr,
    const pst_str_t *domain, u_char *out, int *hold);

/* A destination read back: PST_OK with the router, its main
 * configuration and the next hop (the domain itself for a plain
 * destination); PST_DECLINED for "reject:" with the reply in *nexthop;
 * PST_ERROR when no loaded module is that transport (*nexthop: its
 * name). */
int pst_transport_router(pst_cycle_t *cycle, const pst_str_t *dest,
    const pst_router_t **router, void **main_conf, pst_str_t *nexthop);

/*
 *   tls_policy KEY none|may|encrypt|verify|dane|dane-only;
 *
 * The outbound TLS policy of the destinations KEY matches (the keys of
 * "transport" but a recipient), first match in the order written; the
 * pst_dlv_tls_e value, or -1 when none matches (relay_tls applies).
 */
int pst_transport_tls_policy(pst_cycle_t *cycle, const pst_str_t *dest);

#endif /* PST_TRANSPORT_H */
