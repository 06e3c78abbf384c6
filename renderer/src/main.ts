import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { installNavigationGuard } from './lib/guard';

installNavigationGuard();

mount(App, { target: document.getElementById('app')! });
