<?php
/**
 * Plugin Name:       Clawback
 * Description:       Coins follow every cancelled, refunded or trashed order. Adds WooCommerce → Clawback: connect your store, then manage Clawback without leaving wp-admin.
 * Version:           1.0.0
 * Requires at least: 6.0
 * Requires PHP:      7.4
 * Requires Plugins:  woocommerce
 * License:           MIT
 * Text Domain:       clawback
 *
 * How it works (see readme.txt):
 * - "Connect" sends you to Clawback, which starts WooCommerce's own key exchange
 *   (/wc-auth/v1/authorize): you approve read/write REST access in WooCommerce, Clawback
 *   registers its order webhooks and hands this plugin a launch secret through the REST route
 *   below (authenticated by WooCommerce with the same keys).
 * - The Clawback page is an iframe whose address is signed with that secret for this store,
 *   the current user and the current time; Clawback accepts it for five minutes and lets only
 *   this store frame its pages.
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

const CLAWBACK_SECRET_OPTION = 'clawback_launch_secret';
const CLAWBACK_APP_URL_OPTION = 'clawback_app_url';

/**
 * Where Clawback runs: the CLAWBACK_APP_URL constant (wp-config.php) or the saved setting.
 */
function clawback_app_url() {
	$url = defined( 'CLAWBACK_APP_URL' ) ? CLAWBACK_APP_URL : get_option( CLAWBACK_APP_URL_OPTION, '' );
	return untrailingslashit( esc_url_raw( (string) $url ) );
}

/**
 * WooCommerce → Clawback.
 */
function clawback_admin_menu() {
	add_submenu_page( 'woocommerce', 'Clawback', 'Clawback', 'manage_woocommerce', 'clawback', 'clawback_render_page' );
}
add_action( 'admin_menu', 'clawback_admin_menu', 60 );

/**
 * The route Clawback calls once connected, to hand over the launch secret. Namespaced `wc-…`
 * so that WooCommerce authenticates it with its REST API keys (WC_REST_Authentication).
 */
function clawback_register_routes() {
	register_rest_route(
		'wc-clawback/v1',
		'/launch-secret',
		array(
			'methods'             => 'POST',
			'permission_callback' => function () {
				return current_user_can( 'manage_woocommerce' );
			},
			'args'                => array(
				'secret' => array(
					'required'          => true,
					'type'              => 'string',
					'validate_callback' => function ( $value ) {
						return is_string( $value ) && 1 === preg_match( '/^[A-Za-z0-9_-]{32,128}$/', $value );
					},
				),
			),
			'callback'            => function ( WP_REST_Request $request ) {
				update_option( CLAWBACK_SECRET_OPTION, $request->get_param( 'secret' ), false );
				return new WP_REST_Response( array( 'ok' => true ), 200 );
			},
		)
	);
}
add_action( 'rest_api_init', 'clawback_register_routes' );

/**
 * The signed address of the embedded page: HMAC-SHA256 of "store|user|ts" with the launch secret.
 */
function clawback_launch_url( $secret ) {
	$store = home_url( '/' );
	$user  = (string) get_current_user_id();
	$ts    = (string) time();
	$sig   = hash_hmac( 'sha256', $store . '|' . $user . '|' . $ts, $secret );
	return clawback_app_url() . '/wordpress/launch?' . http_build_query(
		array(
			'store' => $store,
			'user'  => $user,
			'ts'    => $ts,
			'sig'   => $sig,
		)
	);
}

/**
 * Saving the app address (only when it is not fixed in wp-config.php).
 */
function clawback_save_settings() {
	if ( ! current_user_can( 'manage_woocommerce' ) ) {
		wp_die( esc_html__( 'You may not change Clawback settings.', 'clawback' ), 403 );
	}
	check_admin_referer( 'clawback_settings' );
	$url = isset( $_POST['clawback_app_url'] ) ? esc_url_raw( wp_unslash( $_POST['clawback_app_url'] ) ) : '';
	if ( '' !== $url && 0 !== strpos( $url, 'https://' ) ) {
		$url = '';
	}
	update_option( CLAWBACK_APP_URL_OPTION, $url, false );
	wp_safe_redirect( admin_url( 'admin.php?page=clawback' ) );
	exit;
}
add_action( 'admin_post_clawback_save_settings', 'clawback_save_settings' );

/**
 * The page: the app address, a Connect button, then Clawback itself in an iframe.
 */
function clawback_render_page() {
	if ( ! current_user_can( 'manage_woocommerce' ) ) {
		return;
	}
	$app    = clawback_app_url();
	$secret = (string) get_option( CLAWBACK_SECRET_OPTION, '' );
	echo '<div class="wrap"><h1>Clawback</h1>';
	if ( ! defined( 'CLAWBACK_APP_URL' ) ) {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '">';
		wp_nonce_field( 'clawback_settings' );
		echo '<input type="hidden" name="action" value="clawback_save_settings">';
		echo '<p><label for="clawback_app_url">' . esc_html__( 'Clawback address (https)', 'clawback' ) . '</label> ';
		echo '<input type="url" class="regular-text" id="clawback_app_url" name="clawback_app_url" value="' . esc_attr( $app ) . '" placeholder="https://clawback.example.com"> ';
		submit_button( __( 'Save', 'clawback' ), 'secondary', 'submit', false );
		echo '</p></form>';
	}
	if ( '' === $app ) {
		echo '<p>' . esc_html__( 'Enter the address of your Clawback app to connect this store.', 'clawback' ) . '</p></div>';
		return;
	}
	if ( '' === $secret ) {
		$connect = $app . '/auth/woocommerce/connect?' . http_build_query( array( 'store_url' => home_url( '/' ) ) );
		echo '<p>' . esc_html__( 'Connect this store: WooCommerce will ask you to give Clawback read/write access to orders, customers and coupons.', 'clawback' ) . '</p>';
		echo '<p><a class="button button-primary" href="' . esc_url( $connect ) . '">' . esc_html__( 'Connect', 'clawback' ) . '</a></p></div>';
		return;
	}
	echo '<iframe title="Clawback" src="' . esc_url( clawback_launch_url( $secret ) ) . '" style="width:100%;min-height:80vh;border:0;background:#fff"></iframe>';
	echo '<p><a href="' . esc_url( $app . '/auth/woocommerce/connect?' . http_build_query( array( 'store_url' => home_url( '/' ) ) ) ) . '">' . esc_html__( 'Reconnect', 'clawback' ) . '</a></p></div>';
}

/**
 * Forget the launch secret when the plugin is removed.
 */
function clawback_uninstall() {
	delete_option( CLAWBACK_SECRET_OPTION );
	delete_option( CLAWBACK_APP_URL_OPTION );
}
register_uninstall_hook( __FILE__, 'clawback_uninstall' );
