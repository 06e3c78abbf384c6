import { mount } from 'svelte';
import App from './App.svelte';
import './app.css';
import { installNavigationGuard } from './lib/guard';
import { annotator } from './state/annotator.svelte';

installNavigationGuard();

// Closing or reloading the window while edits wait to be saved would lose them: the browser asks first.
window.addEventListener('beforeunload', (event) => {
  if (annotator.hasUnsaved) event.preventDefault();
});

mount(App, { target: document.getElementById('app')! });
